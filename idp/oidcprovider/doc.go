// Package oidcprovider is the IdP's OpenID Connect front-end: an
// op.Provider of github.com/zitadel/oidc/v3 over the IdP store, whose
// authorization endpoint turns each request into a login transaction of the
// login core (package idp) and finishes it with a code.
//
// Only the authorization code flow with PKCE (S256) exists: no implicit,
// hybrid or password grant. Codes are single use and short-lived, refresh
// tokens rotate with replay detection, signing keys rotate on a schedule.
//
// # Where to start
//
// After idp.New, build the provider from the app — New(ctx,
// Options{App: app}) takes the config (server.public_url is the issuer,
// the oidc section lists the clients), the store and the directory from it
// — mount its endpoints with Mount(app), and run Run(ctx) in a goroutine
// for key rotation and clean-up. Example_oidc in package idp shows it;
// examples/embed completes a login against it with a standard client.
package oidcprovider
