// Package admin is the helpdesk and admin console (/admin/): staff look up
// a user's second factors and failure budgets, act on the account (issue a
// reset confirmation code after a phone check, lift locks, end sessions,
// clear factors) and read the audit log.
//
// It is built only on the exported API of package idp, as any page family
// an embedding program adds would be: idp.App.RequireStaff admits a staff
// member with a fresh second factor, the account actions and audit reads
// are App methods, and pages render through App.RenderPage in the shared
// layout with the shared message catalog and form token. Mount it with
// Mount (cmd/idp does) after idp.New.
package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
)

// pages are the console's templates (templates/pages/NAME.html).
var pages = []string{"admin", "admin_user", "admin_action", "admin_audit"}

// Console serves the console's pages below idp.ConsolePath.
type Console struct {
	app *idp.App
	cfg *config.Config
	log *slog.Logger
	mux *http.ServeMux
}

var _ http.Handler = (*Console)(nil)

// New builds the console over app; it reads the admin section (and the
// reset code lifetime) of the app's configuration. It fails when a page
// template is missing.
func New(app *idp.App, logger *slog.Logger) (*Console, error) {
	if app == nil {
		return nil, errors.New("admin: an app is required")
	}
	cfg := app.Config()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := app.AddPages(pages...); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	c := &Console{app: app, cfg: cfg, log: logger, mux: http.NewServeMux()}
	c.mux.HandleFunc("GET /admin/{$}", c.handleHome)
	c.mux.HandleFunc("GET /admin/user", c.handleUser)
	c.mux.HandleFunc("GET /admin/action", c.handleActionPage)
	c.mux.HandleFunc("POST /admin/action", c.handleAction)
	c.mux.HandleFunc("GET /admin/audit", c.handleAudit)
	c.mux.HandleFunc("GET /admin/audit.csv", c.handleAuditCSV)
	c.mux.HandleFunc("/admin/", c.handleOther)
	return c, nil
}

// Mount builds the console and mounts it on app at idp.ConsolePath, behind
// the app's sessions, security headers and CSRF check.
func Mount(app *idp.App, logger *slog.Logger) error {
	c, err := New(app, logger)
	if err != nil {
		return err
	}
	app.Handle(idp.ConsolePath, c)
	return nil
}

// ServeHTTP serves the console's pages.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

type homePage struct {
	Staff *idp.Staff
	ID    string
}

func (c *Console) handleHome(w http.ResponseWriter, r *http.Request) {
	staff, ok := c.app.RequireStaff(w, r, idp.RoleHelpdesk, "")
	if !ok {
		return
	}
	c.app.RenderPage(w, r, http.StatusOK, "admin", homePage{Staff: staff})
}

// handleOther answers every other /admin/ URL and method: 403 to non-staff
// (so nothing about the console's URLs leaks), 404 to staff.
func (c *Console) handleOther(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.app.RequireStaff(w, r, idp.RoleHelpdesk, ""); !ok {
		return
	}
	c.app.RenderPage(w, r, http.StatusNotFound, "error", idp.ConsoleError("error.not_found", ""))
}

// renderLookupFailure answers a console request whose account could not be read.
func (c *Console) renderLookupFailure(w http.ResponseWriter, r *http.Request, staff *idp.Staff, id string, err error) {
	switch {
	case errors.Is(err, ldapstore.ErrUserNotFound):
		c.app.RenderPageWithError(w, r, http.StatusNotFound, "admin", "admin.no_such_user", homePage{Staff: staff, ID: id})
	default: // an outage is a 503, anything else a 500
		c.app.ServerError(w, r, err)
	}
}

// auditFailed logs an audit write that failed where the page still shows.
func (c *Console) auditFailed(r *http.Request, err error) {
	if err != nil {
		c.log.ErrorContext(r.Context(), "audit write failed", "request_id", idp.RequestID(r.Context()), "error", err)
	}
}

// when formats a time for the console: local time, to the minute.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}
