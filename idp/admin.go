package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// The helpdesk and admin console (/admin/). Staff are ordinary directory
// accounts in the configured groups. The console needs the password and a
// real second factor entered in this session within the re-auth window; a
// trusted browser never stands in for it. Every refusal and every action is
// audited with the acting staff member.

// Role is what a staff member may do in the console.
type Role int

// Roles, each including the ones before it.
const (
	RoleNone     Role = iota // not staff
	RoleHelpdesk             // look up users, reset codes, unlock, end sessions, audit log
	RoleAdmin                // also clear a user's factors
)

// String names the role as the audit log records it.
func (r Role) String() string {
	switch r {
	case RoleHelpdesk:
		return "helpdesk"
	case RoleAdmin:
		return "admin"
	default:
		return "none"
	}
}

// roleFor maps directory group names onto a role with the configured groups.
// Directory group names compare without regard to case.
func (a *App) roleFor(groups []string) Role {
	role := RoleNone
	for _, g := range groups {
		for _, ag := range a.cfg.Admin.AdminGroups {
			if strings.EqualFold(g, ag) {
				return RoleAdmin
			}
		}
		for _, hg := range a.cfg.Admin.HelpdeskGroups {
			if strings.EqualFold(g, hg) {
				role = RoleHelpdesk
			}
		}
	}
	return role
}

// staffMember is the signed-in staff member a console request acts as.
type staffMember struct {
	ID   string
	Role Role
}

// requireStaff admits a console request of a staff member holding at least
// need, with a fresh second factor. Otherwise it answers the request
// itself and returns false: 403 to anyone signed in without the role,
// a login (password and factor) to anyone else. resume is where a POST goes
// back to after that login, since the POST itself cannot be replayed.
func (a *App) requireStaff(w http.ResponseWriter, r *http.Request, need Role, resume string) (*staffMember, bool) {
	ctx := r.Context()
	u := a.currentUser(ctx)
	if u == nil {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.renderError(w, r, http.StatusForbidden, "error.title", "error.forbidden")
			return nil, false
		}
		a.stepUp(w, r, r.URL.RequestURI())
		return nil, false
	}
	// The role needs the groups given at login and those the directory
	// gives now: removal from a group closes the console within one
	// account-check interval, and a new member gets in at their next login.
	check, err := a.checkAccount(ctx, true)
	switch {
	case errors.Is(err, errAccountEnded):
		a.stepUp(w, r, resumeURL(r, resume))
		return nil, false
	case err != nil:
		a.serverError(w, r, err)
		return nil, false
	}
	role := min(a.roleFor(u.Groups), a.roleFor(check.Groups))
	if role < need {
		detail := map[string]string{"path": r.URL.Path, "method": r.Method, "need": need.String(), "role": role.String()}
		if err := a.auditAs(ctx, "admin_access_denied", u.ID, u.ID, detail); err != nil {
			a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "error", err)
		}
		a.renderError(w, r, http.StatusForbidden, "error.title", "error.forbidden")
		return nil, false
	}
	if !a.factorFresh(ctx) {
		a.stepUp(w, r, resumeURL(r, resume))
		return nil, false
	}
	return &staffMember{ID: u.ID, Role: role}, true
}

// factorFresh reports whether this session verified a real second factor
// within the re-auth window.
func (a *App) factorFresh(ctx context.Context) bool {
	st := a.authState(ctx)
	return !st.AuthTime.IsZero() && !st.FactorAt.IsZero() && st.FactorMethod != methodTrustedBrowser &&
		a.now().Sub(st.FactorAt) <= a.cfg.Admin.ReauthWindow
}

// stepUp starts a login that demands the password and a second factor
// again, in this transaction (ForceLogin also keeps a trusted browser from
// standing in for the factor), and returns to the console afterwards.
func (a *App) stepUp(w http.ResponseWriter, r *http.Request, returnTo string) {
	console := a.pages.catalog["admin.console"]
	a.startLocalLogin(w, r, returnTo, AuthRequest{
		ClientName: console.JA + " / " + console.EN,
		RequireMFA: true,
		ForceLogin: true,
	})
}

func resumeURL(r *http.Request, resume string) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return r.URL.RequestURI()
	}
	if resume == "" || !isLocalPath(resume) || !strings.HasPrefix(resume, "/admin/") {
		return "/admin/"
	}
	return resume
}

type adminHomePage struct {
	Staff *staffMember
	ID    string
}

func (a *App) handleAdminHome(w http.ResponseWriter, r *http.Request) {
	staff, ok := a.requireStaff(w, r, RoleHelpdesk, "")
	if !ok {
		return
	}
	a.renderPage(w, r, http.StatusOK, "admin", "", adminHomePage{Staff: staff})
}

// handleAdminOther answers every other /admin/ URL and method: 403 to
// non-staff (so nothing about the console's URLs leaks), 404 to staff.
func (a *App) handleAdminOther(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.requireStaff(w, r, RoleHelpdesk, ""); !ok {
		return
	}
	a.renderError(w, r, http.StatusNotFound, "error.title", "error.not_found")
}

// StaffRole reads an account's staff role live from the directory; a
// disabled account has none. It returns ldapstore.ErrUserNotFound for an
// unknown ID.
func (a *App) StaffRole(ctx context.Context, id string) (Role, error) {
	u, err := a.lookupTarget(ctx, id)
	if err != nil {
		return RoleNone, err
	}
	if u.Disabled {
		return RoleNone, nil
	}
	return a.roleFor(u.Groups), nil
}
