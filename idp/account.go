package idp

import (
	"context"
	"encoding/gob"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
)

// Accounts live in the directory and the IdP follows what it says: every
// signed-in session is re-read from the directory at most once per
// admin.account_check_interval. A session whose account was disabled or
// deleted there ends at its next request; the groups read are what the
// console's roles are checked against. Relying parties see group changes at
// the next login, whose claims are read afresh.

const sessAccountCheck = "account_check" // *accountCheck

// errAccountEnded: the directory disabled or removed the session's account,
// and the session was ended.
var errAccountEnded = errors.New("idp: account disabled or removed in the directory")

// accountCheck is the directory's last answer about the session's account.
type accountCheck struct {
	UserID string
	At     time.Time
	Groups []string
	// Failed: the directory could not be asked at At; Groups are older.
	Failed bool
}

func init() { gob.Register(&accountCheck{}) }

// followAccountStatus re-checks the signed-in account before the request is
// served, so a disabled account's session is gone before any handler runs.
func (a *App) followAccountStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			// An outage is logged in checkAccount and never ends a session;
			// an ended session simply continues as a signed-out request.
			_, _ = a.checkAccount(r.Context(), false)
		}
		next.ServeHTTP(w, r)
	})
}

// checkAccount returns the latest directory answer about the signed-in
// account (nil when nobody is signed in), asking the directory when the
// answer is older than the interval, or when retryFailed is set and the last
// attempt met an outage (the console wants a real answer). It ends the
// session and returns errAccountEnded when the account is disabled or gone,
// and returns the directory's error on an outage.
func (a *App) checkAccount(ctx context.Context, retryFailed bool) (*accountCheck, error) {
	u := a.currentUser(ctx)
	if u == nil {
		return nil, nil
	}
	now := a.now()
	last := a.lastAccountCheck(ctx, u)
	if now.Sub(last.At) < a.cfg.Admin.AccountCheckInterval && !(last.Failed && retryFailed) {
		if last.Failed {
			return last, ldapstore.ErrDirectoryUnavailable
		}
		return last, nil
	}
	user, err := a.dir.Lookup(ctx, u.ID)
	switch {
	case errors.Is(err, ldapstore.ErrUserNotFound):
		a.endAccountSessions(ctx, u.ID, "not_found")
		return nil, errAccountEnded
	case err == nil && user.Disabled:
		a.endAccountSessions(ctx, u.ID, "disabled")
		return nil, errAccountEnded
	case err != nil:
		a.log.WarnContext(ctx, "account re-check failed; the session continues", "request_id", requestID(ctx), "error", err)
		failed := &accountCheck{UserID: u.ID, At: now, Groups: last.Groups, Failed: true}
		a.sessions.Put(ctx, sessAccountCheck, failed)
		return failed, err
	}
	fresh := &accountCheck{UserID: u.ID, At: now, Groups: append([]string(nil), user.Groups...)}
	a.sessions.Put(ctx, sessAccountCheck, fresh)
	return fresh, nil
}

// lastAccountCheck is the newest answer about u: the stored re-check, or the
// password check at login, which read the account (status and groups) too.
func (a *App) lastAccountCheck(ctx context.Context, u *SessionUser) *accountCheck {
	last := &accountCheck{UserID: u.ID, At: a.authState(ctx).AuthTime, Groups: u.Groups}
	if c, _ := a.sessions.Get(ctx, sessAccountCheck).(*accountCheck); c != nil && c.UserID == u.ID && c.At.After(last.At) {
		last = c
	}
	return last
}

// endAccountSessions ends every session of an account the directory no
// longer allows, this one included.
func (a *App) endAccountSessions(ctx context.Context, userID, reason string) {
	n, err := a.store.DeleteUserSessions(ctx, userID, "")
	if err != nil {
		a.log.ErrorContext(ctx, "ending sessions of a disabled account failed", "request_id", requestID(ctx), "error", err)
	}
	if err := a.sessions.Destroy(ctx); err != nil {
		a.log.WarnContext(ctx, "destroying session failed", "request_id", requestID(ctx), "error", err)
	}
	detail := map[string]string{"reason": reason, "sessions": strconv.Itoa(n)}
	if err := a.auditAs(ctx, "session_ended_account_status", "directory", userID, detail); err != nil {
		a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "error", err)
	}
}
