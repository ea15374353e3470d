// Package samlprovider is the SAML 2.0 identity provider front-end. It is
// built on github.com/crewjam/saml's types with its own SessionProvider (the
// login core's session and login transaction), ServiceProviderProvider (the
// SP registry from config) and AssertionMaker (attributes, NameIDs and
// authentication context from the login result).
//
// Endpoints, under the app's public URL:
//
//	GET       /saml/metadata     the IdP's metadata
//	GET, POST /saml/sso          AuthnRequest (HTTP-Redirect, HTTP-POST)
//	GET       /saml/sso/resume   where the login core returns after its steps
//	GET, POST /saml/slo          LogoutRequest (HTTP-Redirect, HTTP-POST)
//
// # Where to start
//
// After idp.New, New(ctx, app, Options{}) builds the provider over the app's
// config (the saml section: signing keys, service providers, attribute
// mapping) and store, and mounts the endpoints; run Run(ctx) in a goroutine
// to keep the SPs' metadata fresh. With a directory from ldapstore, build its
// config with idp.LDAPConfig so the mapped attributes are fetched.
package samlprovider
