// Package templates holds the IdP's pages, mail bodies, message catalog and
// static assets, embedded into the binary so a deployment is one file.
package templates

import "embed"

// FS holds every template, the message catalog and the static files.
//
//go:embed pages/*.html mail/*.txt static/* messages.yaml
var FS embed.FS
