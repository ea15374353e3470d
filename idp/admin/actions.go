package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
)

// Staff actions on an account. Each is shown on a confirmation page first,
// done by a POST, and audited (by the idp.App method doing it) with the
// acting staff member as actor and the account as subject.

// action is one console action and the role it needs.
type action struct {
	Name   string
	Need   idp.Role
	Danger bool // destructive: shown apart, confirmed with emphasis
}

var actions = []action{
	{Name: "reset-code", Need: idp.RoleHelpdesk},
	{Name: "unlock-password", Need: idp.RoleHelpdesk},
	{Name: "unlock-otp", Need: idp.RoleHelpdesk},
	{Name: "end-sessions", Need: idp.RoleHelpdesk, Danger: true},
	{Name: "clear-factors", Need: idp.RoleAdmin, Danger: true},
}

// key is the action's name as catalog keys spell it.
func (act action) key() string { return strings.ReplaceAll(act.Name, "-", "_") }

func findAction(name string) (action, bool) {
	for _, act := range actions {
		if act.Name == name {
			return act, true
		}
	}
	return action{}, false
}

type actionPage struct {
	Staff  *idp.Staff
	Action string
	User   *ldapstore.User
	Danger bool
	// Result, after the action: a catalog key, and what was done.
	Result      string
	Code        string
	CodeMinutes int
	Ended       idp.EndedSessions
	BackURL     string
}

// Key is the action's name as catalog keys spell it.
func (p actionPage) Key() string { return action{Name: p.Action}.key() }

// actionRequest reads and authorizes a console action request: the
// action, its role, and the account it is for.
func (c *Console) actionRequest(w http.ResponseWriter, r *http.Request, name, id string) (*idp.Staff, action, *ldapstore.User, bool) {
	ctx := r.Context()
	id = strings.TrimSpace(id)
	back := userURL(id)
	act, known := findAction(name)
	need := act.Need
	if !known {
		need = idp.RoleHelpdesk
	}
	staff, ok := c.app.RequireStaff(w, r, need, back)
	if !ok {
		return nil, act, nil, false
	}
	if !known {
		c.app.RenderPage(w, r, http.StatusNotFound, "error", idp.ConsoleError("error.not_found", back))
		return nil, act, nil, false
	}
	u, err := c.app.LookupAccount(ctx, id)
	if err != nil {
		c.renderLookupFailure(w, r, staff, id, err)
		return nil, act, nil, false
	}
	// Helpdesk staff cannot act on admin accounts: a helpdesk-issued reset
	// code must never become a way around an admin's second factor.
	if target := c.app.RoleFor(u.Groups); target > staff.Role {
		detail := map[string]string{"action": act.Name, "target_role": target.String()}
		c.auditFailed(r, c.app.AuditAs(ctx, "admin_action_refused", staff.ID, u.ID, detail))
		c.app.RenderPage(w, r, http.StatusForbidden, "error", idp.ConsoleError("admin.target_outranks", back))
		return nil, act, nil, false
	}
	return staff, act, u, true
}

func (c *Console) handleActionPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	staff, act, u, ok := c.actionRequest(w, r, q.Get("action"), q.Get("id"))
	if !ok {
		return
	}
	c.app.RenderPage(w, r, http.StatusOK, "admin_action", actionPage{Staff: staff, Action: act.Name, User: u,
		Danger: act.Danger, BackURL: userURL(u.ID)})
}

func (c *Console) handleAction(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, act, u, ok := c.actionRequest(w, r, r.PostFormValue("action"), r.PostFormValue("id"))
	if !ok {
		return
	}
	page := actionPage{Staff: staff, Action: act.Name, User: u, Danger: act.Danger, BackURL: userURL(u.ID)}
	var err error
	switch act.Name {
	case "reset-code":
		if r.PostFormValue("phone_verified") != "yes" {
			c.app.RenderPageWithError(w, r, http.StatusBadRequest, "admin_action", "admin.phone_check_required", page)
			return
		}
		if u.Disabled {
			err = idp.ErrAccountDisabled
			break
		}
		page.Code, err = c.app.IssueResetCode(ctx, staff.ID, u.ID)
		page.CodeMinutes = int(c.cfg.MFA.Email.ResetCodeLifetime.Minutes())
	case "unlock-password":
		err = c.app.UnlockPassword(ctx, staff.ID, u.ID)
	case "unlock-otp":
		err = c.app.UnlockOTP(ctx, staff.ID, u.ID)
	case "end-sessions":
		// Staff ending their own sessions keep the one they use.
		page.Ended, err = c.app.EndUserSessions(ctx, staff.ID, u.ID)
	case "clear-factors":
		page.Ended, err = c.app.ClearFactors(ctx, staff.ID, u.ID)
	}
	switch {
	case errors.Is(err, idp.ErrAccountDisabled):
		c.app.RenderPageWithError(w, r, http.StatusConflict, "admin_action", "admin.account_disabled", page)
		return
	case errors.Is(err, ldapstore.ErrUserNotFound), errors.Is(err, ldapstore.ErrDirectoryUnavailable):
		c.renderLookupFailure(w, r, staff, u.ID, err)
		return
	case err != nil:
		c.app.ServerError(w, r, err)
		return
	}
	page.Result = "admin.done_" + page.Key()
	c.app.RenderPage(w, r, http.StatusOK, "admin_action", page)
}
