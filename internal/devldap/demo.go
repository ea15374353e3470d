package devldap

import (
	_ "embed"
)

// The demo directory's naming context and the account the IdP binds as.
const (
	BaseDN          = "dc=demo,dc=example"
	ServiceDN       = "cn=idp-service,ou=system,dc=demo,dc=example"
	ServicePassword = "dev-service-password"
)

// Where the demo entries live, for wiring the IdP's LDAP settings in dev mode.
const (
	PeopleDN = "ou=people,dc=demo,dc=example"
	GroupsDN = "ou=groups,dc=demo,dc=example"
)

//go:embed demo.ldif
var demoLDIF []byte

// DemoAccount is a login of the demo directory, shown by `idp dev`.
type DemoAccount struct {
	ID       string
	Password string
	Note     string
}

// DemoAccounts lists the demo logins with their passwords. A test binds
// with each one, so this list and demo.ldif cannot drift apart.
func DemoAccounts() []DemoAccount {
	return []DemoAccount{
		{ID: "demo1", Password: "demo1-pass", Note: "student"},
		{ID: "demo2", Password: "demo2-pass", Note: "student with a Japanese name (displayName;lang-ja)"},
		{ID: "demo3", Password: "demo3-pass", Note: "student whose name contains * ( ) characters"},
		{ID: "disabled1", Password: "disabled1-pass", Note: "disabled account (employeeType: disabled): login must fail"},
		{ID: "helpdesk1", Password: "helpdesk1-pass", Note: "helpdesk staff (group idp-helpdesk)"},
		{ID: "admin1", Password: "admin1-pass", Note: "administrator (group idp-admins)"},
	}
}
