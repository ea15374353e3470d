-- PostgreSQL twin of migrations/sqlite/0002_oidc.sql (BIGINT, BYTEA).
-- OpenID Connect provider state. Times are Unix nanoseconds, as in 0001.
-- Authorization requests and codes are short-lived and live in records.

-- A grant is what one authorization (a code redeemed) or one client
-- credentials request produced: its access tokens and its chain of refresh
-- tokens. Revoking a grant ends all of them at once (reuse of a code or of a
-- rotated refresh token, revocation of a refresh token). A revoked grant's
-- row stays until it expires, so its ID is never issued tokens again.
CREATE TABLE oidc_grants (
	id         TEXT    NOT NULL PRIMARY KEY,
	client_id  TEXT    NOT NULL,
	user_id    TEXT    NOT NULL, -- '' for client credentials
	created_at BIGINT  NOT NULL,
	expires_at BIGINT  NOT NULL, -- absolute end of the grant and its tokens
	revoked_at BIGINT
);
CREATE INDEX oidc_grants_expires_at ON oidc_grants (expires_at);
CREATE INDEX oidc_grants_user ON oidc_grants (user_id, client_id);

-- Access tokens (by their ID) and refresh tokens (by the SHA-256 of the
-- token: the token itself is never stored). data is the provider's JSON.
CREATE TABLE oidc_tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	grant_id   TEXT    NOT NULL,
	kind       TEXT    NOT NULL, -- 'access' or 'refresh'
	data       BYTEA   NOT NULL,
	created_at BIGINT  NOT NULL,
	expires_at BIGINT  NOT NULL,
	used_at    BIGINT            -- a refresh token that was exchanged
);
CREATE INDEX oidc_tokens_grant_id ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_expires_at ON oidc_tokens (expires_at);

-- Token signing keys. The newest key with no retired_at signs; retired keys
-- stay published (JWKS) until publish_until. private_key is sealed by the
-- provider with a key derived from security.secret_key.
CREATE TABLE oidc_signing_keys (
	id            TEXT    NOT NULL PRIMARY KEY, -- the JWS "kid"
	algorithm     TEXT    NOT NULL,
	public_jwk    BYTEA   NOT NULL,
	private_key   BYTEA   NOT NULL,
	created_at    BIGINT  NOT NULL,
	retired_at    BIGINT,
	publish_until BIGINT
);
