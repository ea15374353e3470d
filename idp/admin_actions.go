package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
)

// Staff actions on an account. Each is shown on a confirmation page first,
// done by a POST, and audited with the acting staff member as actor and the
// account as subject. The exported methods are what the console and the
// `idp admin` command both call; the caller decides who may act.

// adminAction is one console action and the role it needs.
type adminAction struct {
	Name   string
	Need   Role
	Danger bool // destructive: shown apart, confirmed with emphasis
}

var adminActions = []adminAction{
	{Name: "reset-code", Need: RoleHelpdesk},
	{Name: "unlock-password", Need: RoleHelpdesk},
	{Name: "unlock-otp", Need: RoleHelpdesk},
	{Name: "end-sessions", Need: RoleHelpdesk, Danger: true},
	{Name: "clear-factors", Need: RoleAdmin, Danger: true},
}

// key is the action's name as catalog keys spell it.
func (act adminAction) key() string { return strings.ReplaceAll(act.Name, "-", "_") }

func findAdminAction(name string) (adminAction, bool) {
	for _, act := range adminActions {
		if act.Name == name {
			return act, true
		}
	}
	return adminAction{}, false
}

// ErrAccountDisabled: the action makes no sense for an account the
// directory has disabled (its user cannot sign in to use it).
var ErrAccountDisabled = errors.New("idp: the account is disabled in the directory")

// UnlockPassword clears the password-attempt budgets of an account: its
// account-wide ceiling and every client's budget for it (the per-address
// budgets are not any one account's).
func (a *App) UnlockPassword(ctx context.Context, actor, userID string) error {
	u, err := a.lookupTarget(ctx, userID)
	if err != nil {
		return err
	}
	if err := a.store.ResetCounter(ctx, passwordBudgetKey(u.ID)); err != nil {
		return fmt.Errorf("idp: unlocking password budget: %w", err)
	}
	if _, err := a.store.ResetCountersWithPrefix(ctx, passwordClientPrefix(CanonicalID(u.ID))); err != nil {
		return fmt.Errorf("idp: unlocking password budget: %w", err)
	}
	return a.auditAs(ctx, "admin_password_unlocked", actor, u.ID, nil)
}

// UnlockOTP clears the account-wide second-factor failure budget, lifting
// its lock.
func (a *App) UnlockOTP(ctx context.Context, actor, userID string) error {
	u, err := a.lookupTarget(ctx, userID)
	if err != nil {
		return err
	}
	if err := a.codes.Unlock(ctx, u.ID); err != nil {
		return fmt.Errorf("idp: unlocking one-time passwords: %w", err)
	}
	return a.auditAs(ctx, "admin_otp_unlocked", actor, u.ID, nil)
}

// EndedSessions counts what EndUserSessions and ClearFactors ended.
type EndedSessions struct {
	TrustedBrowsers int
	Sessions        int
	// Grants are the relying parties' refresh-token grants revoked.
	Grants int
}

// EndUserSessions revokes every trusted browser of an account and ends all
// its sessions, so its next request anywhere needs a full login.
func (a *App) EndUserSessions(ctx context.Context, actor, userID string) (EndedSessions, error) {
	return a.endUserSessions(ctx, actor, userID, "")
}

// endUserSessions spares exceptToken (a store session key): staff ending
// their own sessions from the console keep the one they use.
func (a *App) endUserSessions(ctx context.Context, actor, userID, exceptToken string) (EndedSessions, error) {
	u, err := a.lookupTarget(ctx, userID)
	if err != nil {
		return EndedSessions{}, err
	}
	ended, err := a.endAll(ctx, u.ID, exceptToken)
	if err != nil {
		return ended, err
	}
	return ended, a.auditAs(ctx, "admin_sessions_ended", actor, u.ID, endedDetail(ended))
}

func (a *App) endAll(ctx context.Context, userID, exceptToken string) (EndedSessions, error) {
	var ended EndedSessions
	var err error
	if ended.TrustedBrowsers, err = a.RevokeTrustedBrowsers(ctx, userID, ""); err != nil {
		return ended, fmt.Errorf("idp: revoking trusted browsers: %w", err)
	}
	if ended.Sessions, err = a.store.DeleteUserSessions(ctx, userID, exceptToken); err != nil {
		return ended, fmt.Errorf("idp: ending sessions: %w", err)
	}
	if ended.Grants, err = a.revokeGrants(ctx, userID); err != nil {
		return ended, err
	}
	return ended, nil
}

func endedDetail(e EndedSessions) map[string]string {
	return map[string]string{"trusted_browsers": strconv.Itoa(e.TrustedBrowsers), "sessions": strconv.Itoa(e.Sessions),
		"grants": strconv.Itoa(e.Grants)}
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
// trusted browsers and ends its sessions; the user registers a factor anew
// at the next login. The registered address hears of it. Admins only.
func (a *App) ClearFactors(ctx context.Context, actor, userID string) (EndedSessions, error) {
	return a.clearUserFactors(ctx, actor, userID, "")
}

func (a *App) clearUserFactors(ctx context.Context, actor, userID, exceptToken string) (EndedSessions, error) {
	u, err := a.lookupTarget(ctx, userID)
	if err != nil {
		return EndedSessions{}, err
	}
	f, err := a.loadFactors(ctx, u.ID)
	if err != nil {
		return EndedSessions{}, err
	}
	if err := a.clearFactors(ctx, u.ID); err != nil {
		return EndedSessions{}, err
	}
	ended, err := a.endAll(ctx, u.ID, exceptToken)
	if err != nil {
		return ended, err
	}
	detail := endedDetail(ended)
	var methods []string
	for _, row := range factorRows(f) {
		methods = append(methods, strings.TrimPrefix(row.Method, "admin.method_"))
	}
	detail["methods"] = strings.Join(methods, " ")
	if err := a.auditAs(ctx, "admin_factors_cleared", actor, u.ID, detail); err != nil {
		return ended, err
	}
	if f.Email != nil {
		a.notify(ctx, "reset_done", u.ID, f.Email.Address, mailData{})
	}
	return ended, nil
}

type adminActionPage struct {
	Staff  *staffMember
	Action string
	User   *ldapstore.User
	Danger bool
	// Result, after the action: a catalog key, and what was done.
	Result      string
	Code        string
	CodeMinutes int
	Ended       EndedSessions
	BackURL     string
}

// Key is the action's name as catalog keys spell it.
func (p adminActionPage) Key() string { return adminAction{Name: p.Action}.key() }

// adminActionRequest reads and authorizes a console action request: the
// action, its role, and the account it is for.
func (a *App) adminActionRequest(w http.ResponseWriter, r *http.Request, action, id string) (*staffMember, adminAction, *ldapstore.User, bool) {
	ctx := r.Context()
	id = strings.TrimSpace(id)
	back := "/admin/user?" + url.Values{"id": {id}}.Encode()
	act, known := findAdminAction(action)
	need := act.Need
	if !known {
		need = RoleHelpdesk
	}
	staff, ok := a.requireStaff(w, r, need, back)
	if !ok {
		return nil, act, nil, false
	}
	if !known {
		a.renderError(w, r, http.StatusNotFound, "error.title", "error.not_found")
		return nil, act, nil, false
	}
	u, err := a.lookupTarget(ctx, id)
	if err != nil {
		a.renderLookupFailure(w, r, staff, id, err)
		return nil, act, nil, false
	}
	// Helpdesk staff cannot act on admin accounts: a helpdesk-issued reset
	// code must never become a way around an admin's second factor.
	if target := a.roleFor(u.Groups); target > staff.Role {
		detail := map[string]string{"action": act.Name, "target_role": target.String()}
		if err := a.auditAs(ctx, "admin_action_refused", staff.ID, u.ID, detail); err != nil {
			a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "error", err)
		}
		a.renderError(w, r, http.StatusForbidden, "error.title", "admin.target_outranks")
		return nil, act, nil, false
	}
	return staff, act, u, true
}

func (a *App) handleAdminActionPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	staff, act, u, ok := a.adminActionRequest(w, r, q.Get("action"), q.Get("id"))
	if !ok {
		return
	}
	a.renderPage(w, r, http.StatusOK, "admin_action", "", adminActionPage{Staff: staff, Action: act.Name, User: u,
		Danger: act.Danger, BackURL: "/admin/user?" + url.Values{"id": {u.ID}}.Encode()})
}

func (a *App) handleAdminAction(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, act, u, ok := a.adminActionRequest(w, r, r.PostFormValue("action"), r.PostFormValue("id"))
	if !ok {
		return
	}
	page := adminActionPage{Staff: staff, Action: act.Name, User: u, Danger: act.Danger,
		BackURL: "/admin/user?" + url.Values{"id": {u.ID}}.Encode()}
	own := ""
	if u.ID == staff.ID {
		own = hashSessionToken(a.sessions.Token(ctx))
	}
	var err error
	switch act.Name {
	case "reset-code":
		if r.PostFormValue("phone_verified") != "yes" {
			a.renderPage(w, r, http.StatusBadRequest, "admin_action", "admin.phone_check_required", page)
			return
		}
		if u.Disabled {
			err = ErrAccountDisabled
			break
		}
		page.Code, err = a.IssueResetCode(ctx, staff.ID, u.ID)
		page.CodeMinutes = int(a.cfg.MFA.Email.ResetCodeLifetime.Minutes())
	case "unlock-password":
		err = a.UnlockPassword(ctx, staff.ID, u.ID)
	case "unlock-otp":
		err = a.UnlockOTP(ctx, staff.ID, u.ID)
	case "end-sessions":
		page.Ended, err = a.endUserSessions(ctx, staff.ID, u.ID, own)
	case "clear-factors":
		page.Ended, err = a.clearUserFactors(ctx, staff.ID, u.ID, own)
	}
	switch {
	case errors.Is(err, ErrAccountDisabled):
		a.renderPage(w, r, http.StatusConflict, "admin_action", "admin.account_disabled", page)
		return
	case errors.Is(err, ldapstore.ErrUserNotFound), errors.Is(err, ldapstore.ErrDirectoryUnavailable):
		a.renderLookupFailure(w, r, staff, u.ID, err)
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	page.Result = "admin.done_" + page.Key()
	a.renderPage(w, r, http.StatusOK, "admin_action", "", page)
}
