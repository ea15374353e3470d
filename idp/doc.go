// Package idp is the campus identity provider's login core and HTTP
// application: the router, the middleware (security headers, sessions,
// CSRF), the login transaction and its steps, and the user's own pages
// (login, second factor, one-time-password settings, reset).
//
// # Architecture
//
// Data flows one way. A protocol front-end (package idp/oidcprovider or
// idp/samlprovider) turns an application's request into a login transaction
// (App.BeginLogin) and sends the browser here; the core runs the steps the
// request needs — the password through the Directory, the second factor (a
// code mailed through the Mailer, an authenticator app, a security key),
// first-time enrollment — marking each done only where it was verified; the
// front-end then finishes the transaction (App.FinishLogin) with a code or
// an assertion. The core knows nothing of OIDC or SAML. State lives in the
// Store (package store, or the program's own), browser sessions in an scs
// store; nothing that matters is kept in one process's memory, so several
// instances can share one database.
//
// # Where to start
//
// A Go program embeds the IdP in four steps (Example_embed and Example_oidc
// below; examples/embed in the repository is a complete program outside this
// module):
//
//  1. cfg := config.Default(), then set Server.PublicURL and
//     Security.SecretKey (and branding, OIDC clients, SAML service
//     providers). The ldap, mail and store sections are for the idp binary;
//     New checks the rest with cfg.Validate(config.Embedded...).
//  2. Open a store: store.OpenSQLite or store.OpenPostgres, whose
//     SessionStore keeps the browser sessions.
//  3. app, err := idp.New(idp.Options{Config, Directory, Mailer, Store,
//     Sessions}). The Directory is ldapstore.New(idp.LDAPConfig(&cfg), log)
//     or the program's own; the Mailer is the program's own, or mail.NewSMTP
//     adapted with MailerFunc.
//  4. Mount the front-ends — oidcprovider.New(ctx, oidcprovider.Options{App:
//     app}) then Mount and Run; samlprovider.New(ctx, app,
//     samlprovider.Options{}) then Run — and serve app.Handler().
//
// # Extension points
//
// Small interfaces the program implements: Directory (accounts and
// passwords), Mailer (delivery), Store (persistence; check an implementation
// with storetest.Run from package store/storetest) and AuditSink (every
// audit event after it is stored, e.g. for a SIEM). Wording changes through
// Options.Messages (catalog keys), branding through config.Branding (names,
// contacts, colours, logo) without copying templates; Options.Templates
// replaces the templates wholesale. Metrics go to the program's Prometheus
// registry through Options.Registerer, or nowhere when it is nil. Page
// families of their own (such as the staff console, package idp/admin) are
// built on App's exported methods and mounted with App.Handle.
//
// The exported API follows semantic versioning from the first tagged
// release; CHANGELOG.md in the repository lists every change.
package idp
