// Package mfa holds the second factors as pure logic over small interfaces:
// one-time codes mailed to a private address (login, setup and reset), the
// account-wide failure budget they share, e-mail address rules, TOTP and
// recovery codes, and the checks on security keys. It knows nothing of
// HTTP, templates or a particular database.
//
// # Where to start
//
// The login core (package idp) uses it for every factor; a program embedding
// the IdP normally does not call it directly. Codes (NewCodes) issues and
// verifies mailed codes over the small Records and Counters interfaces (the
// login core adapts its store to them); CheckAddress applies the
// blocked-domain rule; TOTPStep and SecretBox handle authenticator apps.
package mfa
