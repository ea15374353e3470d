//go:build tools

package main

import (
	_ "github.com/alexedwards/scs/v2"
	_ "github.com/crewjam/saml"
	_ "github.com/emersion/go-smtp"
	_ "github.com/go-ldap/ldap/v3"
	_ "github.com/jimlambrt/gldap"
	_ "github.com/pquerna/otp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/wneessen/go-mail"
	_ "github.com/zitadel/oidc/v3/pkg/op"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
