package idp

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// maxIDLength bounds a typed account ID before it reaches the directory.
const maxIDLength = 256

type adminUserPage struct {
	Staff *staffMember
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
	AuditURL       string
}

// factorRow is one registered second factor. Method is a catalog key.
type factorRow struct {
	Method, Detail, EnrolledAt, LastUsed string
}

// budgetState is how much of a failure budget is spent, and the lock.
type budgetState struct {
	Failures, Limit int
	Locked          bool
	Until           string
}

type actionLink struct {
	Name, Key, URL string
	Danger         bool
}

// factorRows lists the registered factors for the console.
func factorRows(f *Factors) []factorRow {
	var rows []factorRow
	if f.Email != nil {
		rows = append(rows, factorRow{Method: "admin.method_email", Detail: mfa.MaskAddress(f.Email.Address),
			EnrolledAt: formatWhenOrNever(f.Email.EnrolledAt), LastUsed: formatWhenOrNever(f.Email.LastUsed)})
	}
	if f.TOTP != nil {
		rows = append(rows, factorRow{Method: "admin.method_totp", Detail: "-",
			EnrolledAt: formatWhenOrNever(f.TOTP.EnrolledAt), LastUsed: formatWhenOrNever(f.TOTP.LastUsed)})
	}
	return rows
}

func formatWhenOrNever(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return formatWhen(t)
}

// passwordBudgetKey names the per-ID password budget; it must match the key
// checkPassword spends from.
func passwordBudgetKey(id string) string { return passwordIDKey(CanonicalID(id)) }

// lookupTarget reads an account named in a console request or a CLI
// command from the directory.
func (a *App) lookupTarget(ctx context.Context, id string) (*ldapstore.User, error) {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > maxIDLength {
		return nil, ldapstore.ErrUserNotFound
	}
	return a.dir.Lookup(ctx, id)
}

// renderLookupFailure answers a console request whose account could not be read.
func (a *App) renderLookupFailure(w http.ResponseWriter, r *http.Request, staff *staffMember, id string, err error) {
	switch {
	case errors.Is(err, ldapstore.ErrUserNotFound):
		a.renderPage(w, r, http.StatusNotFound, "admin", "admin.no_such_user", adminHomePage{Staff: staff, ID: id})
	case errors.Is(err, ldapstore.ErrDirectoryUnavailable):
		a.log.ErrorContext(r.Context(), "directory unavailable in the console", "request_id", requestID(r.Context()), "error", err)
		a.renderError(w, r, http.StatusServiceUnavailable, "error.unavailable_title", "error.unavailable")
	default:
		a.serverError(w, r, err)
	}
}

func (a *App) handleAdminUser(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, ok := a.requireStaff(w, r, RoleHelpdesk, "")
	if !ok {
		return
	}
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		a.renderPage(w, r, http.StatusBadRequest, "admin", "admin.id_missing", adminHomePage{Staff: staff})
		return
	}
	u, err := a.lookupTarget(ctx, id)
	if err != nil {
		a.renderLookupFailure(w, r, staff, id, err)
		return
	}
	page, err := a.userStatus(ctx, staff, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	// Staff reading a user's MFA state is itself worth a record.
	if err := a.auditAs(ctx, "admin_user_viewed", staff.ID, u.ID, nil); err != nil {
		a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "error", err)
	}
	a.renderPage(w, r, http.StatusOK, "admin_user", "", page)
}

// userStatus gathers what the console shows about an account.
func (a *App) userStatus(ctx context.Context, staff *staffMember, u *ldapstore.User) (*adminUserPage, error) {
	page := &adminUserPage{Staff: staff, User: u}
	if role := a.roleFor(u.Groups); role != RoleNone {
		page.Role = role.String()
	}
	f, err := a.loadFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	page.Methods = factorRows(f)
	page.RecoveryCodes = len(f.Recovery)
	if !f.UpdatedAt.IsZero() {
		page.FactorsUpdated = formatWhen(f.UpdatedAt)
	}
	browsers, err := a.TrustedBrowsers(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, tb := range browsers {
		page.Trusted = append(page.Trusted, trustedRow{ID: tb.ID, Label: tb.Label,
			Created: formatWhen(tb.Created), LastUsed: formatWhen(tb.LastUsed)})
	}

	failures, err := a.codes.Failures(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	locked, until, err := a.codes.Lock(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	otpLimit := a.cfg.MFA.Email.FailureBudget.Limit
	page.OTP = budgetState{Failures: min(failures, otpLimit), Limit: otpLimit, Locked: locked}
	if locked {
		page.OTP.Until = formatWhen(until)
	}
	pw, err := a.store.GetCounter(ctx, passwordBudgetKey(u.ID), a.now())
	if err != nil {
		return nil, err
	}
	limit := a.cfg.Security.PasswordBudget.PerID.Limit
	// checkPassword refuses an attempt that would pass the limit, so a
	// spent budget locks the next one.
	// Refused attempts past the limit count too; show the budget, not them.
	page.Password = budgetState{Failures: min(pw.Count, limit), Limit: limit, Locked: pw.Count >= limit}
	if page.Password.Locked {
		page.Password.Until = formatWhen(pw.ResetAt)
	}

	events, err := a.store.ListAudit(ctx, store.AuditFilter{Subject: u.ID, Limit: a.cfg.Admin.RecentEvents})
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		page.Events = append(page.Events, newAuditRow(e))
	}
	page.AuditURL = "/admin/audit?" + url.Values{"user": {u.ID}}.Encode()
	for _, act := range adminActions {
		if staff.Role >= act.Need {
			page.Actions = append(page.Actions, actionLink{Name: act.Name, Key: act.key(), Danger: act.Danger,
				URL: "/admin/action?" + url.Values{"action": {act.Name}, "id": {u.ID}}.Encode()})
		}
	}
	return page, nil
}

// auditRow is one audit event as the console shows it.
type auditRow struct {
	ID                                           int64
	Time, Type, Actor, Subject, ClientIP, Detail string
}

func newAuditRow(e store.AuditEvent) auditRow {
	return auditRow{ID: e.ID, Time: e.Time.Local().Format("2006-01-02 15:04:05 MST"), Type: e.Type,
		Actor: e.Actor, Subject: e.Subject, ClientIP: e.ClientIP, Detail: detailText(e.Detail)}
}

// detailText prints an event's detail as "key=value" pairs in key order.
func detailText(d map[string]string) string {
	keys := slices.Sorted(maps.Keys(d))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+d[k])
	}
	return strings.Join(parts, ", ")
}
