package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrCredentialExists reports a WebAuthn credential ID that is registered
// already (to this user or another): nothing is stored.
var ErrCredentialExists = errors.New("store: credential already registered")

// WebAuthnCredential is one registered security key or passkey.
type WebAuthnCredential struct {
	ID         string // credential ID, base64url without padding
	UserID     string
	UserHandle []byte // the user handle the authenticator returns (passkeys)
	Name       string // chosen by the user, e.g. "YubiKey"
	AAGUID     string // authenticator model, hex; "" when not reported
	SignCount  uint32 // the authenticator's signature counter at last use
	// Uses counts successful assertions; UseWebAuthnCredential compares and
	// sets it, so of two assertions read at the same state one wins.
	Uses     int64
	Data     []byte // the credential record as the caller encodes it
	Created  time.Time
	LastUsed time.Time // zero until first use
}

const (
	qInsertWebAuthn = `INSERT INTO webauthn_credentials
(id, user_id, user_handle, name, aaguid, sign_count, uses, data, created_at, last_used_at)
VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, 0) ON CONFLICT (id) DO NOTHING`
	qSelectWebAuthn = `SELECT id, user_id, user_handle, name, aaguid, sign_count, uses, data, created_at, last_used_at
FROM webauthn_credentials`
	qUseWebAuthn = `UPDATE webauthn_credentials SET sign_count = $1, data = $2, last_used_at = $3, uses = uses + 1
WHERE id = $4 AND uses = $5`
)

func checkCredential(c WebAuthnCredential) error {
	if c.ID == "" || c.UserID == "" || len(c.UserHandle) == 0 || len(c.Data) == 0 {
		return errors.New("empty credential ID, user, handle or data")
	}
	return nil
}

// AddWebAuthnCredential registers a credential. It returns
// ErrCredentialExists if the ID is taken, and then stores nothing.
func (db *DB) AddWebAuthnCredential(ctx context.Context, c WebAuthnCredential) error {
	if err := checkCredential(c); err != nil {
		return fmt.Errorf("store: add webauthn credential: %w", err)
	}
	if db.unit(ctx) != nil {
		// In a request's unit: checked now, written at commit (a
		// registration of the same ID racing this one fails the commit).
		switch _, err := db.GetWebAuthnCredential(ctx, c.ID); {
		case err == nil:
			return ErrCredentialExists
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("store: add webauthn credential: %w", err)
		}
		db.deferExec(ctx, "add webauthn credential", true, qInsertWebAuthn, c.ID, c.UserID, c.UserHandle, c.Name, c.AAGUID,
			int64(c.SignCount), c.Data, nanos(c.Created))
		return nil
	}
	res, err := db.write.ExecContext(ctx, qInsertWebAuthn, c.ID, c.UserID, c.UserHandle, c.Name, c.AAGUID,
		int64(c.SignCount), c.Data, nanos(c.Created))
	if err != nil {
		return fmt.Errorf("store: add webauthn credential: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: add webauthn credential: %w", err)
	} else if n == 0 {
		return ErrCredentialExists
	}
	return nil
}

func scanWebAuthn(row interface{ Scan(...any) error }) (WebAuthnCredential, error) {
	var c WebAuthnCredential
	var count, created, used int64
	err := row.Scan(&c.ID, &c.UserID, &c.UserHandle, &c.Name, &c.AAGUID, &count, &c.Uses, &c.Data, &created, &used)
	if err != nil {
		return c, err
	}
	c.SignCount = uint32(count)
	c.Created = fromNanos(created)
	if used != 0 {
		c.LastUsed = fromNanos(used)
	}
	return c, nil
}

// WebAuthnCredentials lists the user's credentials, oldest first.
func (db *DB) WebAuthnCredentials(ctx context.Context, userID string) ([]WebAuthnCredential, error) {
	rows, err := db.read.QueryContext(ctx, qSelectWebAuthn+` WHERE user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: list webauthn credentials: %w", err)
	}
	defer rows.Close()
	var out []WebAuthnCredential
	for rows.Next() {
		c, err := scanWebAuthn(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list webauthn credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list webauthn credentials: %w", err)
	}
	return out, nil
}

// GetWebAuthnCredential returns the credential with this ID (of any user:
// a passkey login learns the user from it), or ErrNotFound.
func (db *DB) GetWebAuthnCredential(ctx context.Context, id string) (WebAuthnCredential, error) {
	c, err := scanWebAuthn(db.read.QueryRowContext(ctx, qSelectWebAuthn+` WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("store: get webauthn credential: %w", err)
	}
	return c, nil
}

// UseWebAuthnCredential records a verified assertion: the new signature
// counter, the updated record and the time, in one statement that only
// succeeds if the credential's Uses is still prevUses. Of two assertions
// checked against the same stored state (a parallel replay, or a clone
// racing the original) exactly one passes; the other gets ErrConflict.
// It returns ErrNotFound if the credential was removed meanwhile.
func (db *DB) UseWebAuthnCredential(ctx context.Context, id string, prevUses int64, signCount uint32, data []byte, now time.Time) error {
	if len(data) == 0 {
		return errors.New("store: use webauthn credential: empty data")
	}
	if db.unit(ctx) != nil {
		// The compare-and-set happens at commit: of two requests that
		// checked an assertion against the same state, one commits and the
		// other's whole request fails with ErrConflict.
		switch c, err := db.GetWebAuthnCredential(ctx, id); {
		case err != nil:
			return err
		case c.Uses != prevUses:
			return fmt.Errorf("store: use webauthn credential: %w", ErrConflict)
		}
		db.deferExec(ctx, "use webauthn credential", true, qUseWebAuthn, int64(signCount), data, nanos(now), id, prevUses)
		return nil
	}
	res, err := db.write.ExecContext(ctx, qUseWebAuthn, int64(signCount), data, nanos(now), id, prevUses)
	if err != nil {
		return fmt.Errorf("store: use webauthn credential: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: use webauthn credential: %w", err)
	}
	if n == 1 {
		return nil
	}
	if _, err := db.GetWebAuthnCredential(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("store: use webauthn credential: %w", ErrConflict)
}

// RenameWebAuthnCredential renames one of the user's credentials; it
// returns ErrNotFound if the user has no credential with this ID.
func (db *DB) RenameWebAuthnCredential(ctx context.Context, userID, id, name string) error {
	const q = `UPDATE webauthn_credentials SET name = $1 WHERE id = $2 AND user_id = $3`
	if db.unit(ctx) != nil {
		if err := db.ownCredential(ctx, userID, id); err != nil {
			return err
		}
		db.deferExec(ctx, "rename webauthn credential", true, q, name, id, userID)
		return nil
	}
	res, err := db.write.ExecContext(ctx, q, name, id, userID)
	return affectedOne(res, err, "rename webauthn credential")
}

// DeleteWebAuthnCredential removes one of the user's credentials; it
// returns ErrNotFound if the user has no credential with this ID.
func (db *DB) DeleteWebAuthnCredential(ctx context.Context, userID, id string) error {
	const q = `DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2`
	if db.unit(ctx) != nil {
		if err := db.ownCredential(ctx, userID, id); err != nil {
			return err
		}
		db.deferExec(ctx, "delete webauthn credential", true, q, id, userID)
		return nil
	}
	res, err := db.write.ExecContext(ctx, q, id, userID)
	return affectedOne(res, err, "delete webauthn credential")
}

// ownCredential returns ErrNotFound unless userID has the credential id.
func (db *DB) ownCredential(ctx context.Context, userID, id string) error {
	c, err := db.GetWebAuthnCredential(ctx, id)
	if err != nil {
		return err
	}
	if c.UserID != userID {
		return ErrNotFound
	}
	return nil
}

// DeleteUserWebAuthnCredentials removes every credential of the user (a
// reset, or staff clearing the user's factors) and returns how many.
func (db *DB) DeleteUserWebAuthnCredentials(ctx context.Context, userID string) (int, error) {
	const q = `DELETE FROM webauthn_credentials WHERE user_id = $1`
	if db.unit(ctx) != nil {
		list, err := db.WebAuthnCredentials(ctx, userID)
		if err != nil {
			return 0, err
		}
		db.deferExec(ctx, "delete user webauthn credentials", false, q, userID)
		return len(list), nil
	}
	res, err := db.write.ExecContext(ctx, q, userID)
	if err != nil {
		return 0, fmt.Errorf("store: delete user webauthn credentials: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: delete user webauthn credentials: %w", err)
	}
	return int(n), nil
}

func affectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
