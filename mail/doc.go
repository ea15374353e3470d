// Package mail delivers the IdP's mail: over SMTP in production (SMTP), or
// into an in-memory outbox in development (Outbox).
//
// Mail bodies carry one-time codes, so neither transport ever logs a body,
// and recipient addresses appear in logs only masked (MaskAddress).
//
// # Where to start
//
// The login core composes every mail itself (bilingual, from the templates
// and the branding) and hands it to an idp.Mailer. The idp binary adapts a
// Sender from this package with idp.MailerFunc; a program embedding the IdP
// may do the same with NewSMTP, or pass its own idp.Mailer and not use this
// package at all.
package mail
