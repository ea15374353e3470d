package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
)

const (
	qFindSession   = `SELECT data FROM sessions WHERE token = $1 AND expiry > $2`
	qCommitSession = `INSERT INTO sessions (token, data, expiry) VALUES ($1, $2, $3)
ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`
	qDeleteSession = `DELETE FROM sessions WHERE token = $1`
	qUnbindSession = `DELETE FROM session_users WHERE token = $1`
	qAllSessions   = `SELECT token, data FROM sessions WHERE expiry > $1`
	qBindSession   = `INSERT INTO session_users (token, user_id, bound_at) VALUES ($1, $2, $3)
ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id, bound_at = excluded.bound_at`
)

// SessionStore keeps github.com/alexedwards/scs/v2 sessions in the database.
type SessionStore struct {
	db *DB
}

var (
	_ scs.Store            = (*SessionStore)(nil)
	_ scs.CtxStore         = (*SessionStore)(nil)
	_ scs.IterableStore    = (*SessionStore)(nil)
	_ scs.IterableCtxStore = (*SessionStore)(nil)
)

// BrowserSessions is where browser sessions live: an scs store (with and
// without contexts, iterable) whose sessions BindSessionUser and
// DeleteUserSessions act on. A store written outside this package offers
// one through its Sessions method for storetest.Run.
type BrowserSessions interface {
	scs.CtxStore
	scs.IterableStore
	scs.IterableCtxStore
}

// Sessions returns the store's browser sessions as BrowserSessions, for
// storetest.Run and for idp.Options.Sessions.
func (db *DB) Sessions() BrowserSessions { return db.SessionStore() }

// SessionStore returns the scs store backed by db.
func (db *DB) SessionStore() *SessionStore { return &SessionStore{db: db} }

// FindCtx returns the data of an unexpired session; found is false for an
// unknown or expired token.
func (s *SessionStore) FindCtx(ctx context.Context, token string) (data []byte, found bool, err error) {
	if u := s.db.unit(ctx); u != nil {
		if data, found, ok := u.findSession(token, time.Now()); ok {
			return data, found, nil
		}
	}
	err = s.db.q.findSession.QueryRowContext(ctx, token, time.Now().UnixNano()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: find session: %w", err)
	}
	return data, true, nil
}

// CommitCtx stores the session data under token until expiry.
func (s *SessionStore) CommitCtx(ctx context.Context, token string, data []byte, expiry time.Time) error {
	if data == nil {
		data = []byte{}
	}
	if u := s.db.unit(ctx); u != nil {
		u.commitSession(token, data, expiry)
		return nil
	}
	if _, err := s.db.q.commitSession.ExecContext(ctx, token, data, nanos(expiry)); err != nil {
		return fmt.Errorf("store: commit session: %w", err)
	}
	return nil
}

// DeleteCtx removes the session and its user binding; an unknown token is
// not an error.
func (s *SessionStore) DeleteCtx(ctx context.Context, token string) error {
	if u := s.db.unit(ctx); u != nil {
		u.deleteSession(token)
		return nil
	}
	err := s.db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, s.db.q.deleteSession).ExecContext(ctx, token); err != nil {
			return err
		}
		_, err := tx.StmtContext(ctx, s.db.q.unbindSession).ExecContext(ctx, token)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// AllCtx returns the data of every unexpired session by token (an empty,
// non-nil map when there are none).
func (s *SessionStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.db.q.allSessions.QueryContext(ctx, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("store: all sessions: %w", err)
	}
	defer rows.Close()
	all := map[string][]byte{}
	for rows.Next() {
		var token string
		var data []byte
		if err := rows.Scan(&token, &data); err != nil {
			return nil, fmt.Errorf("store: all sessions: %w", err)
		}
		all[token] = data
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: all sessions: %w", err)
	}
	return all, nil
}

// Find is FindCtx without a context, for scs.Store.
func (s *SessionStore) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit is CommitCtx without a context, for scs.Store.
func (s *SessionStore) Commit(token string, data []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, data, expiry)
}

// Delete is DeleteCtx without a context, for scs.Store.
func (s *SessionStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// All is AllCtx without a context, for scs.IterableStore.
func (s *SessionStore) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// BindSessionUser records that the session token belongs to userID, so that
// DeleteUserSessions can end it later. Rebinding a token replaces its user.
// The token need not be committed yet: scs writes a renewed token only at the
// end of the request. The binding is removed with the session.
func (db *DB) BindSessionUser(ctx context.Context, token, userID string) error {
	if token == "" || userID == "" {
		return errors.New("store: bind session user: empty token or user")
	}
	if u := db.unit(ctx); u != nil {
		u.bindSession(token, userID, time.Now())
		return nil
	}
	if _, err := db.q.bindSession.ExecContext(ctx, token, userID, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("store: bind session user: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session bound to userID except exceptToken
// (pass "" to end them all) and returns how many unexpired sessions ended.
func (db *DB) DeleteUserSessions(ctx context.Context, userID, exceptToken string) (int, error) {
	ended := 0
	now := time.Now().UnixNano()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		ended = 0
		rows, err := tx.QueryContext(ctx, `DELETE FROM sessions WHERE token IN (
	SELECT token FROM session_users WHERE user_id = $1 AND token <> $2)
RETURNING expiry`, userID, exceptToken)
		if err != nil {
			return err
		}
		for rows.Next() {
			var expiry int64
			if err := rows.Scan(&expiry); err != nil {
				rows.Close()
				return err
			}
			if expiry > now {
				ended++
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM session_users WHERE user_id = $1 AND token <> $2`, userID, exceptToken)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete user sessions: %w", err)
	}
	return ended, nil
}
