package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/campusidp/campusidp/ldapstore"
)

// Staff are ordinary directory accounts in the configured groups. What
// follows is the core API the console (idp/admin) and the `idp admin`
// command are built on: roles, the staff check of a console request, and
// account lookups. The console needs the password and a real second factor
// entered in this session within the re-auth window; a trusted browser
// never stands in for it. Every refusal is audited with the staff member.

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

// RoleFor maps directory group names onto a role with the configured
// groups (admin.helpdesk_groups, admin.admin_groups). Group names compare
// without regard to case.
func (a *App) RoleFor(groups []string) Role {
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

// Staff is the signed-in staff member a console request acts as.
type Staff struct {
	ID   string
	Role Role
}

// ConsolePath is where the console is mounted; a step-up login returns
// only to paths below it.
const ConsolePath = "/admin/"

// RequireStaff admits a console request of a staff member holding at least
// need, with a fresh second factor. Otherwise it answers the request itself
// and returns false: 403 to anyone signed in without the role, a login
// (password and factor) to anyone else. back is the console page the
// request belongs to (a user's page for an action on that user; "" for the
// console's start): a POST resumes there after the login, since the POST
// itself cannot be replayed, and staff refused for their role are offered
// the way back to it.
func (a *App) RequireStaff(w http.ResponseWriter, r *http.Request, need Role, back string) (*Staff, bool) {
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
		a.stepUp(w, r, resumeURL(r, back))
		return nil, false
	case err != nil:
		a.serverError(w, r, err)
		return nil, false
	}
	role := min(a.RoleFor(u.Groups), a.RoleFor(check.Groups))
	if role < need {
		detail := map[string]string{"path": r.URL.Path, "method": r.Method, "need": need.String(), "role": role.String()}
		if err := a.auditAs(ctx, "admin_access_denied", u.ID, u.ID, detail); err != nil {
			a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "error", err)
		}
		if role == RoleNone {
			a.renderError(w, r, http.StatusForbidden, "error.title", "error.forbidden")
		} else {
			a.RenderPage(w, r, http.StatusForbidden, "error", ConsoleError("error.forbidden", back))
		}
		return nil, false
	}
	if !a.factorFresh(ctx) {
		a.stepUp(w, r, resumeURL(r, back))
		return nil, false
	}
	return &Staff{ID: u.ID, Role: role}, true
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
	return consoleBack(resume)
}

// consoleBack is back when it is a console page, else the console's start.
func consoleBack(back string) string {
	if back == "" || !isLocalPath(back) || !strings.HasPrefix(back, ConsolePath) {
		return ConsolePath
	}
	return back
}

// StaffRole reads an account's staff role live from the directory; a
// disabled account has none. It returns ldapstore.ErrUserNotFound for an
// unknown ID.
func (a *App) StaffRole(ctx context.Context, id string) (Role, error) {
	u, err := a.LookupAccount(ctx, id)
	if err != nil {
		return RoleNone, err
	}
	if u.Disabled {
		return RoleNone, nil
	}
	return a.RoleFor(u.Groups), nil
}

// maxIDLength bounds a typed account ID before it reaches the directory.
const maxIDLength = 256

// LookupAccount reads an account named by staff (in the console or the
// `idp admin` command) from the directory. An empty or overlong ID is
// ldapstore.ErrUserNotFound without asking the directory.
func (a *App) LookupAccount(ctx context.Context, id string) (*ldapstore.User, error) {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > maxIDLength {
		return nil, ldapstore.ErrUserNotFound
	}
	return a.dir.Lookup(ctx, id)
}
