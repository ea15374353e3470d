package idp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/gob"
	"fmt"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/campusidp/campusidp/ldapstore"
)

// Session keys. Everything in a session is server-side; the cookie holds
// only the random token.
const (
	sessCSRF = "csrf"
	// sessLogoutNext is where a confirmed protocol logout sends the browser.
	sessLogoutNext = "logout_next"
	sessCreated    = "created" // unix nanoseconds, for the absolute timeout
	sessSeen       = "seen"    // unix nanoseconds, for the idle timeout
	sessBinding    = "binding" // ties login transactions to this browser
	sessUser       = "user"    // *SessionUser
	sessAuth       = "auth"    // *AuthState
)

// SessionUser is the signed-in account as read from the directory at login.
type SessionUser struct {
	ID            string
	DN            string
	DisplayName   string
	DisplayNameJA string
	Mail          string
	Groups        []string
	// Attributes are the raw directory attributes fetched at login (claim
	// and attribute-release mapping reads them).
	Attributes map[string][]string
}

// AuthState records how and when the session's user authenticated.
type AuthState struct {
	AuthTime time.Time // time of the last password check
	AMR      []string  // RFC 8176 methods, e.g. "pwd", "otp", "mfa"
	FactorAt time.Time // time of the last second-factor check (zero if none)
	// FactorMethod is "email_otp", "totp", "recovery_code" or "trusted_browser".
	FactorMethod string
}

func init() {
	gob.Register(&SessionUser{})
	gob.Register(&AuthState{})
}

func sessionUserFrom(u *ldapstore.User) *SessionUser {
	return &SessionUser{
		ID:            u.ID,
		DN:            u.DN,
		DisplayName:   u.DisplayName,
		DisplayNameJA: u.DisplayNameJA,
		Mail:          u.Mail,
		Groups:        append([]string(nil), u.Groups...),
		Attributes:    u.Attributes,
	}
}

func (a *App) newSessionManager(store scs.Store) *scs.SessionManager {
	sm := scs.New()
	sm.Store = store
	sm.HashTokenInStore = true
	// sessionTimeouts enforces the idle and absolute timeouts with the app's
	// clock. scs keeps only the absolute lifetime (the row's expiry): its own
	// IdleTimeout would mark every request's session modified and rewrite
	// the row each time, the store's busiest write.
	sm.Lifetime = a.cfg.Session.AbsoluteTimeout
	sm.Cookie.Name = a.cfg.Session.CookieName
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Path = "/"
	sm.Cookie.Persist = false
	if a.secure {
		sm.Cookie.Secure = true
		// __Host- pins the cookie to this exact host over https, path /.
		sm.Cookie.Name = "__Host-" + a.cfg.Session.CookieName
	}
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		a.serverError(w, r, fmt.Errorf("session store: %w", err))
	}
	return sm
}

// sessionTimeouts ends sessions that are idle or too old by the app's clock.
func (a *App) sessionTimeouts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if rs, _ := ctx.Value(ctxRequestState).(*requestState); rs != nil {
			rs.sessionLoaded = true
			// A panic unwinding past here leaves a context without the
			// session: the error page must not read it.
			defer func() { rs.sessionLoaded = false }()
		}
		if created := a.sessions.GetInt64(ctx, sessCreated); created != 0 {
			now := a.now()
			seen := time.Unix(0, a.sessions.GetInt64(ctx, sessSeen))
			switch {
			case now.Sub(time.Unix(0, created)) > a.cfg.Session.AbsoluteTimeout:
				a.endSession(ctx, "absolute_timeout")
			case now.Sub(seen) > a.cfg.Session.IdleTimeout:
				a.endSession(ctx, "idle_timeout")
			case now.Sub(seen) > time.Minute:
				// Refreshing at most once a minute keeps store writes low.
				a.sessions.Put(ctx, sessSeen, now.UnixNano())
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a *App) endSession(ctx context.Context, reason string) {
	if u := a.currentUser(ctx); u != nil {
		a.audit(ctx, "session_expired", u.ID, map[string]string{"reason": reason})
	}
	if err := a.sessions.Destroy(ctx); err != nil {
		a.log.WarnContext(ctx, "destroying session failed", "request_id", requestID(ctx), "error", err)
	}
}

func (a *App) markSessionStart(ctx context.Context) {
	if a.sessions.GetInt64(ctx, sessCreated) == 0 {
		now := a.now().UnixNano()
		a.sessions.Put(ctx, sessCreated, now)
		a.sessions.Put(ctx, sessSeen, now)
		if a.currentUser(ctx) == nil {
			// Anonymous traffic keeps nothing longer than a login may take:
			// the row of a session nobody signs in to expires with the
			// login transaction. Signing in renews the token, and with it
			// the full lifetime. (scs counts deadlines by the wall clock.)
			a.sessions.SetDeadline(ctx, time.Now().Add(a.cfg.Security.LoginTxLifetime))
		}
	}
}

func (a *App) currentUser(ctx context.Context) *SessionUser {
	u, _ := a.sessions.Get(ctx, sessUser).(*SessionUser)
	return u
}

func (a *App) authState(ctx context.Context) *AuthState {
	s, _ := a.sessions.Get(ctx, sessAuth).(*AuthState)
	if s == nil {
		return &AuthState{}
	}
	return s
}

// signIn records a password login. The token is renewed (privilege change),
// and the session is re-started if it belonged to someone else. With
// keyAMR, it records a passkey login instead (no password; the key is
// both steps, see SignInWithKey).
func (a *App) signIn(ctx context.Context, u *ldapstore.User, keyAMR ...string) error {
	prev := a.currentUser(ctx)
	if prev != nil && prev.ID != u.ID {
		binding := a.sessions.GetString(ctx, sessBinding)
		if err := a.sessions.Clear(ctx); err != nil {
			return err
		}
		if binding != "" {
			a.sessions.Put(ctx, sessBinding, binding)
		}
	}
	if err := a.renewAndBind(ctx, u.ID); err != nil {
		return err
	}
	now := a.now()
	a.sessions.Put(ctx, sessUser, sessionUserFrom(u))
	state := &AuthState{AuthTime: now, AMR: []string{"pwd"}}
	if len(keyAMR) > 0 {
		state = &AuthState{AuthTime: now, AMR: append(append([]string(nil), keyAMR...), "mfa"), FactorAt: now,
			FactorMethod: MethodSecurityKey}
	} else if prev != nil && prev.ID == u.ID {
		// A second factor done earlier in this session stays valid.
		old := a.authState(ctx)
		state.FactorAt = old.FactorAt
		state.FactorMethod = old.FactorMethod
		state.AMR = mergeAMR(state.AMR, old.AMR)
	}
	a.sessions.Put(ctx, sessAuth, state)
	a.sessions.Put(ctx, sessCSRF, randomToken(32))
	a.sessions.Put(ctx, sessCreated, now.UnixNano())
	a.sessions.Put(ctx, sessSeen, now.UnixNano())
	return nil
}

// requestState is what one request remembers between the handlers it runs.
type requestState struct {
	// renewedFor is the user the session token renewed in this request was
	// bound to ("" until a renewal).
	renewedFor string
	// factors caches the factor settings read in this request (by user);
	// every change to them drops the entry.
	factors map[string]*Factors
	// sessionLoaded: the session is in the context (sessionTimeouts ran), so
	// pages may read it. An error page shown before that (the session
	// store failed) or after a panic must not touch it.
	sessionLoaded bool
}

// renewAndBind gives the session a new token (a privilege change) and
// binds the token to userID, so DeleteUserSessions can end it. It does so
// once per request and user: a password login that a trusted browser
// completes changes privilege twice in one POST, and a second token that
// no one has seen yet protects nothing and costs a session delete and a
// binding write.
func (a *App) renewAndBind(ctx context.Context, userID string) error {
	rs, _ := ctx.Value(ctxRequestState).(*requestState)
	if rs != nil && rs.renewedFor == userID {
		return nil
	}
	if err := a.sessions.RenewToken(ctx); err != nil {
		return err
	}
	if err := a.store.BindSessionUser(ctx, hashSessionToken(a.sessions.Token(ctx)), userID); err != nil {
		return err
	}
	if rs != nil {
		rs.renewedFor = userID
	}
	return nil
}

func mergeAMR(base, more []string) []string {
	out := append([]string(nil), base...)
	for _, m := range more {
		found := false
		for _, b := range out {
			if b == m {
				found = true
				break
			}
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}

// hashSessionToken matches scs's HashTokenInStore, so rows written by scs can
// be found from the token a handler sees.
func hashSessionToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
