-- Initial schema, the PostgreSQL twin of migrations/sqlite/0001_init.sql:
-- same tables, columns and indexes; BIGINT for integers (times are Unix
-- nanoseconds, UTC) and BYTEA for opaque values.

-- Generic expiring records: login transactions, OIDC requests, codes, ...
-- version lets UpdateRecord detect a concurrent writer (compare-and-set).
CREATE TABLE records (
	kind       TEXT   NOT NULL,
	id         TEXT   NOT NULL,
	value      BYTEA  NOT NULL,
	expires_at BIGINT NOT NULL,
	version    BIGINT NOT NULL,
	PRIMARY KEY (kind, id)
);
CREATE INDEX records_expires_at ON records (expires_at);

-- Fixed-window attempt counters (brute-force budgets).
CREATE TABLE counters (
	counter_key  TEXT   NOT NULL PRIMARY KEY,
	hits         BIGINT NOT NULL,
	window_start BIGINT NOT NULL,
	reset_at     BIGINT NOT NULL
);
CREATE INDEX counters_reset_at ON counters (reset_at);

-- Browser sessions for github.com/alexedwards/scs/v2 (opaque data).
CREATE TABLE sessions (
	token  TEXT   NOT NULL PRIMARY KEY,
	data   BYTEA  NOT NULL,
	expiry BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry);

-- Which user a session token belongs to, so all sessions of a user can be
-- ended. No foreign key: scs commits a renewed token only at the end of the
-- request, after the application has already bound it.
CREATE TABLE session_users (
	token    TEXT   NOT NULL PRIMARY KEY,
	user_id  TEXT   NOT NULL,
	bound_at BIGINT NOT NULL
);
CREATE INDEX session_users_user_id ON session_users (user_id);

-- Append-only audit log. An identity column never reuses a value, so paging
-- by ID stays correct even after old rows are purged.
CREATE TABLE audit_log (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	occurred_at BIGINT NOT NULL,
	event_type  TEXT   NOT NULL,
	actor       TEXT   NOT NULL,
	subject     TEXT   NOT NULL,
	client_ip   TEXT   NOT NULL,
	user_agent  TEXT   NOT NULL,
	request_id  TEXT   NOT NULL,
	detail      TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_type ON audit_log (event_type, id);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
