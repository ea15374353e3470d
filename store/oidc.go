package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Outcomes of the OIDC token methods that callers act on.
var (
	// ErrTokenUsed reports a refresh token that was already exchanged: its
	// presentation is a replay, and the caller revokes the grant.
	ErrTokenUsed = errors.New("store: token already used")
	// ErrGrantExists reports a grant ID that is taken, also by a revoked
	// grant: its tokens must not be issued.
	ErrGrantExists = errors.New("store: grant already exists")
)

// Kinds of OIDC tokens.
const (
	OIDCAccessToken  = "access"
	OIDCRefreshToken = "refresh"
)

// OIDCGrant is one authorization: the tokens issued from one redeemed code
// (or one client credentials request) share it.
type OIDCGrant struct {
	ID       string
	ClientID string
	UserID   string // "" for client credentials
	Created  time.Time
	Expires  time.Time // no token of the grant outlives this
	Revoked  time.Time // zero unless revoked
}

// OIDCToken is an access token (ID: its random ID) or a refresh token (ID:
// a hash of the token). ClientID and UserID are its grant's, filled in when
// the token is read.
type OIDCToken struct {
	ID       string
	GrantID  string
	Kind     string // OIDCAccessToken or OIDCRefreshToken
	Data     []byte // the provider's own encoding of scopes, subject, ...
	Created  time.Time
	Expires  time.Time
	Used     time.Time // when a refresh token was exchanged; zero if never
	ClientID string
	UserID   string
}

// OIDCSigningKey is a token signing key. PrivateKey is stored as given (the
// provider seals it); PublicJWK is the published JSON Web Key.
type OIDCSigningKey struct {
	ID           string
	Algorithm    string
	PublicJWK    []byte
	PrivateKey   []byte
	Created      time.Time
	Retired      time.Time // zero while the key signs
	PublishUntil time.Time // zero while the key signs
}

const (
	qInsertOIDCGrant = `INSERT INTO oidc_grants (id, client_id, user_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`
	qInsertOIDCToken = `INSERT INTO oidc_tokens (id, grant_id, kind, data, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)`
	qLockLiveOIDCGrant = `SELECT id FROM oidc_grants WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2`
	qGetOIDCToken      = `SELECT t.id, t.grant_id, t.kind, t.data, t.created_at, t.expires_at, t.used_at, g.client_id, g.user_id
FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id
WHERE t.id = $1 AND t.expires_at > $2 AND g.revoked_at IS NULL AND g.expires_at > $2`
	qUseOIDCRefresh = `UPDATE oidc_tokens SET used_at = $1
WHERE id = $2 AND kind = 'refresh' AND used_at IS NULL AND expires_at > $1
RETURNING grant_id`
	qRevokeOIDCGrant = `INSERT INTO oidc_grants (id, client_id, user_id, created_at, expires_at, revoked_at)
VALUES ($1, '', '', $2, $3, $2)
ON CONFLICT (id) DO UPDATE SET revoked_at = COALESCE(oidc_grants.revoked_at, excluded.revoked_at)`
)

// CreateOIDCGrant records a new grant and its first tokens in one
// transaction. It returns ErrGrantExists if the ID is taken (a revoked grant
// keeps its ID until it expires), and then stores nothing.
func (db *DB) CreateOIDCGrant(ctx context.Context, g OIDCGrant, tokens ...OIDCToken) error {
	if g.ID == "" || g.ClientID == "" || g.Expires.IsZero() {
		return errors.New("store: create oidc grant: empty ID, client or expiry")
	}
	if db.unit(ctx) != nil {
		// In a request's unit (the token endpoint): written with the
		// code's redemption, in one transaction. Grant IDs are random; a
		// taken one fails the commit.
		for _, t := range tokens {
			if err := checkOIDCToken(t); err != nil {
				return fmt.Errorf("store: create oidc grant: %w", err)
			}
		}
		db.deferExec(ctx, "create oidc grant", true, qInsertOIDCGrant, g.ID, g.ClientID, g.UserID, nanos(g.Created), nanos(g.Expires))
		for _, t := range tokens {
			data := t.Data
			if data == nil {
				data = []byte{}
			}
			db.deferExec(ctx, "create oidc token", false, qInsertOIDCToken, t.ID, g.ID, t.Kind, data, nanos(t.Created), nanos(t.Expires))
		}
		return nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qInsertOIDCGrant, g.ID, g.ClientID, g.UserID, nanos(g.Created), nanos(g.Expires))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrGrantExists
		}
		return insertOIDCTokens(ctx, tx, g.ID, tokens)
	})
	if errors.Is(err, ErrGrantExists) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: create oidc grant: %w", err)
	}
	return nil
}

func insertOIDCTokens(ctx context.Context, tx *sql.Tx, grantID string, tokens []OIDCToken) error {
	for _, t := range tokens {
		if err := checkOIDCToken(t); err != nil {
			return err
		}
		data := t.Data
		if data == nil {
			data = []byte{}
		}
		if _, err := tx.ExecContext(ctx, qInsertOIDCToken, t.ID, grantID, t.Kind, data, nanos(t.Created), nanos(t.Expires)); err != nil {
			return err
		}
	}
	return nil
}

// RotateOIDCRefreshToken marks the refresh token oldID used and adds tokens
// to its grant, in one transaction. It returns ErrTokenUsed if the token had
// been exchanged before (a replay: nothing is stored), and ErrNotFound if it
// is unknown, expired, or its grant is revoked or expired.
func (db *DB) RotateOIDCRefreshToken(ctx context.Context, oldID string, now time.Time, tokens ...OIDCToken) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var grantID string
		err := tx.QueryRowContext(ctx, qUseOIDCRefresh, nanos(now), oldID).Scan(&grantID)
		if errors.Is(err, sql.ErrNoRows) {
			var used sql.NullInt64
			err := tx.QueryRowContext(ctx, `SELECT used_at FROM oidc_tokens WHERE id = $1 AND kind = 'refresh'`, oldID).Scan(&used)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return ErrNotFound
			case err != nil:
				return err
			case used.Valid:
				return ErrTokenUsed
			}
			return ErrNotFound // expired
		}
		if err != nil {
			return err
		}
		// The grant row is locked so a concurrent revocation either
		// precedes this (and is seen) or waits for it (and removes these).
		var id string
		err = tx.QueryRowContext(ctx, qLockLiveOIDCGrant+db.dialect.forUpdate, grantID, nanos(now)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return insertOIDCTokens(ctx, tx, grantID, tokens)
	})
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrTokenUsed):
		return err
	}
	return fmt.Errorf("store: rotate oidc refresh token: %w", err)
}

// GetOIDCToken returns the token with this ID, with its grant's client and
// user. Used refresh tokens are returned too (Used set), so a replay can be
// recognised. It returns ErrNotFound if the token is unknown or expired at
// now, or its grant is revoked or expired.
func (db *DB) GetOIDCToken(ctx context.Context, id string, now time.Time) (*OIDCToken, error) {
	var t OIDCToken
	var created, expires int64
	var used sql.NullInt64
	err := db.read.QueryRowContext(ctx, qGetOIDCToken, id, nanos(now)).Scan(
		&t.ID, &t.GrantID, &t.Kind, &t.Data, &created, &expires, &used, &t.ClientID, &t.UserID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get oidc token: %w", err)
	}
	t.Created, t.Expires = fromNanos(created), fromNanos(expires)
	if used.Valid {
		t.Used = fromNanos(used.Int64)
	}
	return &t, nil
}

// DeleteOIDCToken removes one token (access token revocation); a missing
// token is not an error.
func (db *DB) DeleteOIDCToken(ctx context.Context, id string) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM oidc_tokens WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: delete oidc token: %w", err)
	}
	return nil
}

// RevokeOIDCGrant revokes a grant and deletes its tokens. A grant that does
// not exist yet is recorded as revoked until keepUntil, so that tokens can
// never be issued under its ID (a code replayed while its first redemption
// is still being answered).
func (db *DB) RevokeOIDCGrant(ctx context.Context, grantID string, now, keepUntil time.Time) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, qRevokeOIDCGrant, grantID, nanos(now), nanos(keepUntil)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM oidc_tokens WHERE grant_id = $1`, grantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: revoke oidc grant: %w", err)
	}
	return nil
}

// RevokeOIDCUserGrants revokes every live grant of a user (of one client,
// or of all when clientID is "") and deletes their tokens, e.g. when the
// account is compromised. It returns how many grants it revoked.
func (db *DB) RevokeOIDCUserGrants(ctx context.Context, userID, clientID string, now time.Time) (int, error) {
	if userID == "" {
		return 0, errors.New("store: revoke oidc user grants: empty user")
	}
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		q := `UPDATE oidc_grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1`
		args := []any{nanos(now), userID}
		if clientID != "" {
			q += ` AND client_id = $3`
			args = append(args, clientID)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		rows, err := res.RowsAffected()
		if err != nil {
			return err
		}
		n = int(rows)
		_, err = tx.ExecContext(ctx, `DELETE FROM oidc_tokens WHERE grant_id IN (
	SELECT id FROM oidc_grants WHERE user_id = $1 AND revoked_at IS NOT NULL)`, userID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: revoke oidc user grants: %w", err)
	}
	return n, nil
}

// ListOIDCSigningKeys returns the keys to publish at now, newest first: the
// signing ones and the retired ones whose publish_until is still ahead.
func (db *DB) ListOIDCSigningKeys(ctx context.Context, now time.Time) ([]OIDCSigningKey, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, algorithm, public_jwk, private_key, created_at, retired_at, publish_until
FROM oidc_signing_keys WHERE publish_until IS NULL OR publish_until > $1
ORDER BY created_at DESC, id DESC`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("store: list oidc signing keys: %w", err)
	}
	defer rows.Close()
	var keys []OIDCSigningKey
	for rows.Next() {
		var k OIDCSigningKey
		var created int64
		var retired, until sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicJWK, &k.PrivateKey, &created, &retired, &until); err != nil {
			return nil, fmt.Errorf("store: list oidc signing keys: %w", err)
		}
		k.Created = fromNanos(created)
		if retired.Valid {
			k.Retired = fromNanos(retired.Int64)
		}
		if until.Valid {
			k.PublishUntil = fromNanos(until.Int64)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list oidc signing keys: %w", err)
	}
	return keys, nil
}

// RotateOIDCSigningKey makes next the signing key of its algorithm,
// provided the current signing key of that algorithm is still
// expectCurrent ("" for none): every key of the algorithm that signed until
// now is retired at now and stays published until publishUntil. Keys of
// other algorithms are left alone (each algorithm in use has its own
// signing key). If another process rotated first it returns ErrConflict and
// changes nothing; the caller reloads the keys.
func (db *DB) RotateOIDCSigningKey(ctx context.Context, next OIDCSigningKey, expectCurrent string, now, publishUntil time.Time) error {
	if next.ID == "" || next.Algorithm == "" || len(next.PublicJWK) == 0 || len(next.PrivateKey) == 0 {
		return errors.New("store: rotate oidc signing key: incomplete key")
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// Instances racing to create the first key find no row to lock.
		if err := db.lockTx(ctx, tx, "oidc_signing_keys"); err != nil {
			return err
		}
		var current string
		err := tx.QueryRowContext(ctx, `SELECT id FROM oidc_signing_keys WHERE retired_at IS NULL AND algorithm = $1
ORDER BY created_at DESC, id DESC LIMIT 1`+db.dialect.forUpdate, next.Algorithm).Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if current != expectCurrent {
			return ErrConflict
		}
		if _, err := tx.ExecContext(ctx, `UPDATE oidc_signing_keys SET retired_at = $1, publish_until = $2
WHERE retired_at IS NULL AND algorithm = $3`, nanos(now), nanos(publishUntil), next.Algorithm); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO oidc_signing_keys (id, algorithm, public_jwk, private_key, created_at)
VALUES ($1, $2, $3, $4, $5)`, next.ID, next.Algorithm, next.PublicJWK, next.PrivateKey, nanos(next.Created))
		return err
	})
	if errors.Is(err, ErrConflict) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: rotate oidc signing key: %w", err)
	}
	return nil
}

// RetireOIDCSigningKey retires the signing key id at now without a
// successor (no client uses its algorithm any more); it stays published
// until publishUntil. A key already retired, or missing, is left as it is.
func (db *DB) RetireOIDCSigningKey(ctx context.Context, id string, now, publishUntil time.Time) error {
	if _, err := db.write.ExecContext(ctx, `UPDATE oidc_signing_keys SET retired_at = $1, publish_until = $2
WHERE id = $3 AND retired_at IS NULL`, nanos(now), nanos(publishUntil), id); err != nil {
		return fmt.Errorf("store: retire oidc signing key: %w", err)
	}
	return nil
}

// DeleteExpiredOIDC removes tokens and grants that expired at or before now
// and signing keys no longer published, and returns how many rows it removed.
func (db *DB) DeleteExpiredOIDC(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM oidc_tokens WHERE expires_at <= $1`,
		`DELETE FROM oidc_grants WHERE expires_at <= $1`,
		`DELETE FROM oidc_signing_keys WHERE publish_until IS NOT NULL AND publish_until <= $1`,
	} {
		res, err := db.write.ExecContext(ctx, q, nanos(now))
		if err != nil {
			return total, fmt.Errorf("store: delete expired oidc rows: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: delete expired oidc rows: %w", err)
		}
		total += n
	}
	return total, nil
}

func checkOIDCToken(t OIDCToken) error {
	if t.ID == "" || (t.Kind != OIDCAccessToken && t.Kind != OIDCRefreshToken) || t.Expires.IsZero() {
		return fmt.Errorf("invalid token (kind %q)", t.Kind)
	}
	return nil
}
