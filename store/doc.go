// Package store persists the IdP's state: expiring records (login
// transactions, OIDC requests and codes, SAML requests), attempt counters,
// the append-only audit log, browser sessions and which user each belongs
// to, OIDC grants, tokens and signing keys, and security keys.
//
// # Architecture
//
// One type, DB, over two SQL dialects: SQLite (OpenSQLite, the embedded
// default, one file, no server) and PostgreSQL (OpenPostgres, for several
// instances behind a load balancer). Both migrate their schema on open.
// Counters are atomic in the database and records compare-and-swap, so a
// login begun on one instance finishes on another. Sessions can live in
// Redis instead (OpenRedisSessions). Every behaviour is specified by the
// public conformance suite in package store/storetest, run against both
// dialects.
//
// A request's changes form one unit of work (BeginUnit, unit.go): the
// idp middleware passes a context carrying it to every call, the calls
// collect their changes, and one commit writes them all, before the
// response goes out, with the audit rows they go with. Budget counters
// and single-use updates (SpendAtOnce) are written at once. SQLite
// commits the units waiting together (group.go: one writer, a savepoint
// per request); PostgreSQL commits each in a transaction of its own.
// Sessions in Redis cannot join the SQL transaction: scs writes them
// directly, just before the unit commits; if the commit then fails, the
// 503 page goes out without the session cookie, so a renewed token (a
// sign-in) never reaches the browser, but a change to a session whose
// token stays the same is kept in Redis although the request failed.
//
// # Where to start
//
// Open a DB and give it to idp.New as Options.Store, with
// db.SessionStore() as Options.Sessions; the front-ends take it from the
// app. Call DeleteExpired periodically (idp serve does every few minutes).
// A program with its own storage implements storetest.Store and runs
// storetest.Run against it; the types that interface names (Counter,
// AuditEvent, AuditFilter, OIDCGrant, OIDCToken, OIDCSigningKey,
// WebAuthnCredential, BrowserSessions) and the sentinel errors
// (ErrNotFound, ErrConflict and others) are defined here.
package store
