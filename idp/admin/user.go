package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
)

type userPage struct {
	Staff *idp.Staff
	User  *ldapstore.User
	// Role is the looked-up account's own staff role ("" for none).
	Role           string
	Methods        []factorRow
	RecoveryCodes  int // unused recovery codes
	FactorsUpdated string
	Trusted        []trustedRow
	OTP            budgetState
	Password       budgetState
	Events         []auditRow
	Actions        []actionLink
	// Outranks: the account's staff role is above the viewer's, so no
	// action is offered (each would be refused).
	Outranks bool
	AuditURL string
}

// factorRow is one registered second factor. Method is a catalog key.
type factorRow struct {
	Method, Detail, EnrolledAt, LastUsed string
}

type trustedRow struct {
	Label, Created, LastUsed string
}

// budgetState is how much of a failure budget is spent, and the lock.
type budgetState struct {
	Failures, Limit int
	Locked          bool
	Until           string
}

func newBudgetState(b idp.Budget) budgetState {
	s := budgetState{Failures: b.Failures, Limit: b.Limit, Locked: b.Locked}
	if b.Locked {
		s.Until = when(b.Until)
	}
	return s
}

type actionLink struct {
	Name, Key, URL string
	Danger         bool
}

// userURL is the console page of an account.
func userURL(id string) string { return "/admin/user?" + url.Values{"id": {id}}.Encode() }

func (c *Console) handleUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, ok := c.app.RequireStaff(w, r, idp.RoleHelpdesk, "")
	if !ok {
		return
	}
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		c.app.RenderPageWithError(w, r, http.StatusBadRequest, "admin", "admin.id_missing", homePage{Staff: staff})
		return
	}
	u, err := c.app.LookupAccount(ctx, id)
	if err != nil {
		c.renderLookupFailure(w, r, staff, id, err)
		return
	}
	page, err := c.userStatus(ctx, staff, u)
	if err != nil {
		c.app.ServerError(w, r, err)
		return
	}
	// Staff reading a user's MFA state is itself worth a record.
	c.auditFailed(r, c.app.AuditAs(ctx, "admin_user_viewed", staff.ID, u.ID, nil))
	c.app.RenderPage(w, r, http.StatusOK, "admin_user", page)
}

// userStatus gathers what the console shows about an account.
func (c *Console) userStatus(ctx context.Context, staff *idp.Staff, u *ldapstore.User) (*userPage, error) {
	page := &userPage{Staff: staff, User: u}
	role := c.app.RoleFor(u.Groups)
	if role != idp.RoleNone {
		page.Role = role.String()
	}
	st, err := c.app.AccountStatus(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, f := range st.Factors {
		row := factorRow{Method: "admin.method_" + f.Method, Detail: f.Detail, EnrolledAt: when(f.EnrolledAt), LastUsed: when(f.LastUsed)}
		if row.Detail == "" {
			row.Detail = "-"
		}
		page.Methods = append(page.Methods, row)
	}
	page.RecoveryCodes = st.RecoveryCodes
	if !st.FactorsUpdated.IsZero() {
		page.FactorsUpdated = when(st.FactorsUpdated)
	}
	for _, tb := range st.TrustedBrowsers {
		page.Trusted = append(page.Trusted, trustedRow{Label: tb.Label, Created: when(tb.Created), LastUsed: when(tb.LastUsed)})
	}
	page.OTP = newBudgetState(st.OTP)
	page.Password = newBudgetState(st.Password)

	events, err := c.app.AuditEvents(ctx, idp.AuditQuery{User: u.ID}, c.cfg.Admin.RecentEvents)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		page.Events = append(page.Events, c.newAuditRow(e))
	}
	page.AuditURL = "/admin/audit?" + url.Values{"user": {u.ID}}.Encode()
	page.Outranks = role > staff.Role
	for _, act := range actions {
		if staff.Role >= act.Need && !page.Outranks {
			page.Actions = append(page.Actions, actionLink{Name: act.Name, Key: act.key(), Danger: act.Danger,
				URL: "/admin/action?" + url.Values{"action": {act.Name}, "id": {u.ID}}.Encode()})
		}
	}
	return page, nil
}
