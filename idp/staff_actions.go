package idp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Staff actions on an account, each audited with the acting staff member as
// actor and the account as subject. The console (idp/admin) and the
// `idp admin` command both call them; the caller decides who may act.

// ErrAccountDisabled: the action makes no sense for an account the
// directory has disabled (its user cannot sign in to use it).
var ErrAccountDisabled = errors.New("idp: the account is disabled in the directory")

// UnlockPassword clears the password-attempt budgets of an account: its
// account-wide ceiling and every client's budget for it (the per-address
// budgets are not any one account's).
func (a *App) UnlockPassword(ctx context.Context, actor, userID string) error {
	u, err := a.LookupAccount(ctx, userID)
	if err != nil {
		return err
	}
	if err := a.auditRequired(ctx, "admin_password_unlocked", actor, u.ID, nil); err != nil {
		return err
	}
	if err := a.store.ResetCounter(ctx, passwordBudgetKey(u.ID)); err != nil {
		return fmt.Errorf("idp: unlocking password budget: %w", err)
	}
	if _, err := a.store.ResetCountersWithPrefix(ctx, passwordClientPrefix(CanonicalID(u.ID))); err != nil {
		return fmt.Errorf("idp: unlocking password budget: %w", err)
	}
	return nil
}

// UnlockOTP clears the account-wide second-factor failure budget, lifting
// its lock.
func (a *App) UnlockOTP(ctx context.Context, actor, userID string) error {
	u, err := a.LookupAccount(ctx, userID)
	if err != nil {
		return err
	}
	if err := a.auditRequired(ctx, "admin_otp_unlocked", actor, u.ID, nil); err != nil {
		return err
	}
	if err := a.codes.Unlock(ctx, u.ID); err != nil {
		return fmt.Errorf("idp: unlocking one-time passwords: %w", err)
	}
	return nil
}

// EndedSessions counts what EndUserSessions and ClearFactors ended.
type EndedSessions struct {
	TrustedBrowsers int
	Sessions        int
	// Grants are the relying parties' refresh-token grants revoked.
	Grants int
}

// EndUserSessions revokes every trusted browser of an account and ends all
// its sessions, so its next request anywhere needs a full login. Called
// from a request of the account itself (staff ending their own sessions in
// the console), it spares the session that request uses.
func (a *App) EndUserSessions(ctx context.Context, actor, userID string) (EndedSessions, error) {
	u, err := a.LookupAccount(ctx, userID)
	if err != nil {
		return EndedSessions{}, err
	}
	// Recorded before anything ends, so what ends is known only by the
	// trusted browsers about to go; the counts are logged after.
	if err := a.auditRequired(ctx, "admin_sessions_ended", actor, u.ID, a.trustedDetail(ctx, u.ID)); err != nil {
		return EndedSessions{}, err
	}
	ended, err := a.endAll(ctx, u.ID)
	if err != nil {
		return ended, err
	}
	a.logEnded(ctx, "admin_sessions_ended", u.ID, ended)
	return ended, nil
}

// ownSessionKey is the store key of the session of the request in ctx when
// it belongs to userID, else "". Outside a request (the CLI) there is none.
func (a *App) ownSessionKey(ctx context.Context, userID string) string {
	rs, _ := ctx.Value(ctxRequestState).(*requestState)
	if rs == nil || !rs.sessionLoaded {
		return ""
	}
	if u := a.currentUser(ctx); u == nil || u.ID != userID {
		return ""
	}
	return hashSessionToken(a.sessions.Token(ctx))
}

func (a *App) endAll(ctx context.Context, userID string) (EndedSessions, error) {
	var ended EndedSessions
	var err error
	if ended.TrustedBrowsers, err = a.RevokeTrustedBrowsers(ctx, userID, ""); err != nil {
		return ended, fmt.Errorf("idp: revoking trusted browsers: %w", err)
	}
	if ended.Sessions, err = a.store.DeleteUserSessions(ctx, userID, a.ownSessionKey(ctx, userID)); err != nil {
		return ended, fmt.Errorf("idp: ending sessions: %w", err)
	}
	if ended.Grants, err = a.revokeGrants(ctx, userID); err != nil {
		return ended, err
	}
	return ended, nil
}

// trustedDetail is the audit detail of an action about to end a user's
// sessions: how many trusted browsers it revokes (sessions and grants are
// counted only as they end; see logEnded).
func (a *App) trustedDetail(ctx context.Context, userID string) map[string]string {
	d := map[string]string{}
	if ids, err := a.trustedIDs(ctx, userID); err == nil {
		d["trusted_browsers"] = strconv.Itoa(len(ids))
	}
	return d
}

// logEnded logs what a staff action ended, under the request ID its audit
// row carries.
func (a *App) logEnded(ctx context.Context, event, userID string, e EndedSessions) {
	a.log.InfoContext(ctx, "staff action ended sessions", "request_id", requestID(ctx), "event", event, "user", userID,
		"trusted_browsers", e.TrustedBrowsers, "sessions", e.Sessions, "grants", e.Grants)
}

// grantRevoker is a store that also keeps relying parties' token grants
// (the OIDC provider's); ending a user's sessions revokes them too, so a
// refresh token cannot outlive the sign-out.
type grantRevoker interface {
	RevokeOIDCUserGrants(ctx context.Context, userID, clientID string, now time.Time) (int, error)
}

func (a *App) revokeGrants(ctx context.Context, userID string) (int, error) {
	r, ok := a.store.(grantRevoker)
	if !ok {
		return 0, nil
	}
	n, err := r.RevokeOIDCUserGrants(ctx, userID, "", a.now())
	if err != nil {
		return 0, fmt.Errorf("idp: revoking token grants: %w", err)
	}
	return n, nil
}

// ClearFactors removes every second factor of an account, revokes its
// trusted browsers and ends its sessions (sparing the calling request's
// own, as EndUserSessions does); the user registers a factor anew at the
// next login. The registered address hears of it. Admins only.
func (a *App) ClearFactors(ctx context.Context, actor, userID string) (EndedSessions, error) {
	u, err := a.LookupAccount(ctx, userID)
	if err != nil {
		return EndedSessions{}, err
	}
	f, err := a.loadFactors(ctx, u.ID)
	if err != nil {
		return EndedSessions{}, err
	}
	detail := a.trustedDetail(ctx, u.ID)
	var methods []string
	for _, m := range factorInfos(f) {
		methods = append(methods, m.Method)
	}
	if f.Keys != nil {
		methods = append(methods, MethodSecurityKey)
	}
	detail["methods"] = strings.Join(methods, " ")
	// Recorded before the factors go, so they never go unrecorded.
	if err := a.auditRequired(ctx, "admin_factors_cleared", actor, u.ID, detail); err != nil {
		return EndedSessions{}, err
	}
	if err := a.clearFactors(ctx, u.ID); err != nil {
		return EndedSessions{}, err
	}
	ended, err := a.endAll(ctx, u.ID)
	if err != nil {
		return ended, err
	}
	a.logEnded(ctx, "admin_factors_cleared", u.ID, ended)
	if f.Email != nil {
		a.notify(ctx, "reset_done", u.ID, f.Email.Address, mailData{})
	}
	return ended, nil
}
