-- Security keys and passkeys (WebAuthn credentials). Times are Unix
-- nanoseconds, as in 0001. A credential never expires: it stays until its
-- owner removes it, a reset clears it, or staff clear the user's factors.
CREATE TABLE webauthn_credentials (
	id           TEXT    NOT NULL PRIMARY KEY, -- credential ID, base64url without padding
	user_id      TEXT    NOT NULL,
	user_handle  BLOB    NOT NULL, -- the random handle the authenticator keeps for the user
	name         TEXT    NOT NULL,
	aaguid       TEXT    NOT NULL, -- authenticator model, hex ('' if none)
	sign_count   INTEGER NOT NULL,
	uses         INTEGER NOT NULL, -- successful assertions; the compare-and-set version
	data         BLOB    NOT NULL, -- the credential record (public key, flags, transports)
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER NOT NULL  -- 0 until first use
) STRICT;
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);
