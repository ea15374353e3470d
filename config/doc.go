// Package config is the IdP's single configuration tree: the structs, their
// defaults, strict YAML parsing (unknown keys are errors, never silently
// ignored) and a Validate that reports every problem at once, each with the
// dotted path of the offending key.
//
// # Architecture
//
// Default returns a complete tree with every limit, lifetime and timeout
// at its safe value; Parse lays a YAML document over it, so a file names
// only what differs; Validate checks the result. The same tree is read by
// the login core (package idp), the front-ends and the idp binary, which
// also builds the directory, mail transport and store from it.
//
// # Where to start
//
// The idp binary calls Load (file) and prints Describe(err), one line per
// problem; config.example.yaml documents every key. A program embedding
// package idp starts from Default, sets Server.PublicURL and
// Security.SecretKey, and brings its own directory, mailer and store:
// Validate(Embedded...) (which idp.New runs) then skips the ldap, mail and
// store sections, and Validate(OwnDirectory) and the like skip one part.
//
// Secret values (keys, passwords, DSNs) are of type Secret: read from the
// file, an environment variable or a file of their own, and never printed.
package config
