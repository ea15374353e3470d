package idp

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/campusidp/campusidp/store"
)

// AuditQuery selects audit events for the viewer and the export. Zero
// fields do not filter.
type AuditQuery struct {
	User  string    // the account the event concerns (its subject)
	Actor string    // who did it
	Type  string    // event type, e.g. "admin_factors_cleared"
	Since time.Time // at or after
	Until time.Time // before
}

func (q AuditQuery) filter() store.AuditFilter {
	return store.AuditFilter{Subject: q.User, Actor: q.Actor, Type: q.Type, Since: q.Since, Until: q.Until}
}

// errBadFilter: a filter that does not parse (a time) or is too long.
var errBadFilter = errors.New("idp: audit filter not understood")

// ParseAuditTime reads a time filter: an RFC 3339 time, or a local date and
// time as a browser's datetime-local field sends it ("2006-01-02T15:04"),
// or a local date. "" is the zero time (no filter).
func ParseAuditTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: time %q (use 2006-01-02T15:04 or RFC 3339)", errBadFilter, s)
}

// auditQueryFrom reads the viewer's filter form.
func auditQueryFrom(v url.Values) (AuditQuery, error) {
	q := AuditQuery{
		User:  strings.TrimSpace(v.Get("user")),
		Actor: strings.TrimSpace(v.Get("actor")),
		Type:  strings.TrimSpace(v.Get("type")),
	}
	var err1, err2 error
	q.Since, err1 = ParseAuditTime(v.Get("since"))
	q.Until, err2 = ParseAuditTime(v.Get("until"))
	if len(q.User) > maxIDLength || len(q.Actor) > maxIDLength || len(q.Type) > 128 {
		return q, errBadFilter
	}
	return q, errors.Join(err1, err2)
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("user", q.User)
	set("actor", q.Actor)
	set("type", q.Type)
	if !q.Since.IsZero() {
		set("since", q.Since.Local().Format("2006-01-02T15:04"))
	}
	if !q.Until.IsZero() {
		set("until", q.Until.Local().Format("2006-01-02T15:04"))
	}
	return v
}

type adminAuditPage struct {
	Staff *staffMember
	// The filter as typed, so the form keeps it.
	User, Actor, Type, Since, Until string
	Events                          []auditRow
	OlderURL, NewestURL, CSVURL     string
}

func (a *App) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, ok := a.requireStaff(w, r, RoleHelpdesk, "")
	if !ok {
		return
	}
	raw := r.URL.Query()
	page := adminAuditPage{Staff: staff, User: raw.Get("user"), Actor: raw.Get("actor"), Type: raw.Get("type"),
		Since: raw.Get("since"), Until: raw.Get("until")}
	q, err := auditQueryFrom(raw)
	if err != nil {
		a.renderPage(w, r, http.StatusBadRequest, "admin_audit", "admin.audit_bad_filter", page)
		return
	}
	f := q.filter()
	if before := raw.Get("before"); before != "" {
		if f.BeforeID, err = strconv.ParseInt(before, 10, 64); err != nil || f.BeforeID <= 0 {
			a.renderPage(w, r, http.StatusBadRequest, "admin_audit", "admin.audit_bad_filter", page)
			return
		}
	}
	size := a.cfg.Admin.AuditPageSize
	// One more than a page tells whether an older page exists.
	f.Limit = size + 1
	events, err := a.store.ListAudit(ctx, f)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	vals := q.values()
	if len(events) > size {
		events = events[:size]
		older := q.values()
		older.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		page.OlderURL = "/admin/audit?" + older.Encode()
	}
	if f.BeforeID > 0 {
		page.NewestURL = "/admin/audit?" + vals.Encode()
	}
	page.CSVURL = "/admin/audit.csv?" + vals.Encode()
	for _, e := range events {
		page.Events = append(page.Events, newAuditRow(e))
	}
	a.renderPage(w, r, http.StatusOK, "admin_audit", "", page)
}

func (a *App) handleAdminAuditCSV(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, ok := a.requireStaff(w, r, RoleHelpdesk, "")
	if !ok {
		return
	}
	q, err := auditQueryFrom(r.URL.Query())
	if err != nil {
		a.renderPage(w, r, http.StatusBadRequest, "admin_audit", "admin.audit_bad_filter", adminAuditPage{Staff: staff})
		return
	}
	out := &csvResponse{w: w, name: fmt.Sprintf("audit-%s.csv", a.now().UTC().Format("20060102-150405"))}
	if _, err := a.ExportAudit(ctx, staff.ID, out, q); err != nil {
		if !out.started {
			a.serverError(w, r, err)
			return
		}
		// The status line is gone by now; the log and a cut-short file say it.
		a.log.ErrorContext(ctx, "audit export failed", "request_id", requestID(ctx), "error", err)
	}
}

// csvResponse sets the download's headers with its first byte, so a store
// failure before any row still gets an error page.
type csvResponse struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (c *csvResponse) Write(p []byte) (int, error) {
	if !c.started {
		c.started = true
		h := c.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+c.name+`"`)
		h.Set("Cache-Control", "no-store")
	}
	return c.w.Write(p)
}

// auditCSVHeader names the export's columns.
var auditCSVHeader = []string{"id", "time", "type", "actor", "subject", "client_ip", "user_agent", "request_id", "detail"}

// ExportAudit writes the events matching q to w as CSV, newest first, and
// records the export itself in the audit log as done by actor. It returns
// how many events it wrote.
func (a *App) ExportAudit(ctx context.Context, actor string, w io.Writer, q AuditQuery) (int, error) {
	f := q.filter()
	f.Limit = store.MaxAuditLimit
	// The first page is read before anything is written, so an unreadable
	// log fails cleanly instead of as a file with a header only.
	events, err := a.store.ListAudit(ctx, f)
	if err != nil {
		return 0, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(auditCSVHeader); err != nil {
		return 0, err
	}
	n := 0
	for {
		for _, e := range events {
			row := []string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.Actor,
				e.Subject, e.ClientIP, e.UserAgent, e.RequestID, detailText(e.Detail)}
			for i := range row {
				row[i] = csvSafe(row[i])
			}
			if err := cw.Write(row); err != nil {
				return n, err
			}
			n++
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
		if len(events) < f.Limit {
			break
		}
		f.BeforeID = events[len(events)-1].ID
		if events, err = a.store.ListAudit(ctx, f); err != nil {
			return n, err
		}
	}
	detail := map[string]string{"rows": strconv.Itoa(n)}
	for k, v := range q.values() {
		detail["filter_"+k] = v[0]
	}
	return n, a.auditAs(ctx, "admin_audit_exported", actor, "", detail)
}

// csvSafe keeps a spreadsheet from reading a cell as a formula: cells that
// begin (after any blanks) with = + - @, a tab or a carriage return get a
// leading apostrophe. Audit cells carry typed IDs and user agents, so an
// attacker could otherwise plant a formula for staff to open.
func csvSafe(s string) string {
	trimmed := strings.TrimLeft(s, " ")
	if trimmed == "" {
		return s
	}
	switch trimmed[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
