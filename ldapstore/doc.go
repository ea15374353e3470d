// Package ldapstore checks campus passwords against an LDAP directory and
// reads user attributes, account status and groups.
//
// Searches run as a read-only service account over a pooled connection;
// passwords are verified by binding as the user on connections of a
// separate pool that is never used for searches. Unknown IDs cost the same
// round trips as known ones, and directory outages are reported as
// ErrDirectoryUnavailable, never as a failed login.
//
// # Where to start
//
// New(Config, logger) returns a Directory that satisfies idp.Directory (and
// the front-ends' smaller interfaces). With the configuration tree, build
// its Config with idp.LDAPConfig, which also fetches the attributes the OIDC
// claims and the SAML mapping read. A program with another account source
// implements idp.Directory itself, returning User values and the sentinel
// errors of this package (ErrInvalidCredentials for every failed password,
// ErrUserNotFound, ErrDirectoryUnavailable for outages).
package ldapstore
