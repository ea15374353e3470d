-- PostgreSQL twin of migrations/sqlite/0008_webauthn.sql (BIGINT, BYTEA).
CREATE TABLE webauthn_credentials (
	id           TEXT    NOT NULL PRIMARY KEY, -- credential ID, base64url without padding
	user_id      TEXT    NOT NULL,
	user_handle  BYTEA   NOT NULL, -- the random handle the authenticator keeps for the user
	name         TEXT    NOT NULL,
	aaguid       TEXT    NOT NULL, -- authenticator model, hex ('' if none)
	sign_count   BIGINT  NOT NULL,
	uses         BIGINT  NOT NULL, -- successful assertions; the compare-and-set version
	data         BYTEA   NOT NULL, -- the credential record (public key, flags, transports)
	created_at   BIGINT  NOT NULL,
	last_used_at BIGINT  NOT NULL  -- 0 until first use
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);
