package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/campusidp/campusidp/idp"
)

// maxIDLength bounds a typed ID in a filter.
const maxIDLength = 256

// auditQueryFrom reads the viewer's filter form.
func auditQueryFrom(v url.Values) (idp.AuditQuery, error) {
	q := idp.AuditQuery{
		User:  strings.TrimSpace(v.Get("user")),
		Actor: strings.TrimSpace(v.Get("actor")),
		Type:  strings.TrimSpace(v.Get("type")),
	}
	var err1, err2 error
	q.Since, err1 = idp.ParseAuditTime(v.Get("since"))
	q.Until, err2 = idp.ParseAuditTime(v.Get("until"))
	if len(q.User) > maxIDLength || len(q.Actor) > maxIDLength || len(q.Type) > 128 {
		return q, idp.ErrBadFilter
	}
	return q, errors.Join(err1, err2)
}

type auditPage struct {
	Staff *idp.Staff
	// The filter as typed, so the form keeps it.
	User, Actor, Type, Since, Until string
	Events                          []auditRow
	OlderURL, NewestURL, CSVURL     string
}

func (c *Console) handleAudit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, ok := c.app.RequireStaff(w, r, idp.RoleHelpdesk, "")
	if !ok {
		return
	}
	raw := r.URL.Query()
	page := auditPage{Staff: staff, User: raw.Get("user"), Actor: raw.Get("actor"), Type: raw.Get("type"),
		Since: raw.Get("since"), Until: raw.Get("until")}
	q, err := auditQueryFrom(raw)
	if err != nil {
		c.app.RenderPageWithError(w, r, http.StatusBadRequest, "admin_audit", "admin.audit_bad_filter", page)
		return
	}
	if before := raw.Get("before"); before != "" {
		if q.BeforeID, err = strconv.ParseInt(before, 10, 64); err != nil || q.BeforeID <= 0 {
			c.app.RenderPageWithError(w, r, http.StatusBadRequest, "admin_audit", "admin.audit_bad_filter", page)
			return
		}
	}
	size := c.cfg.Admin.AuditPageSize
	// One more than a page tells whether an older page exists.
	events, err := c.app.AuditEvents(ctx, q, size+1)
	if err != nil {
		c.app.ServerError(w, r, err)
		return
	}
	vals := q.Values()
	if len(events) > size {
		events = events[:size]
		older := q.Values()
		older.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		page.OlderURL = "/admin/audit?" + older.Encode()
	}
	if q.BeforeID > 0 {
		page.NewestURL = "/admin/audit?" + vals.Encode()
	}
	page.CSVURL = "/admin/audit.csv?" + vals.Encode()
	for _, e := range events {
		page.Events = append(page.Events, c.newAuditRow(e))
	}
	c.app.RenderPage(w, r, http.StatusOK, "admin_audit", page)
}

func (c *Console) handleAuditCSV(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	staff, ok := c.app.RequireStaff(w, r, idp.RoleHelpdesk, "")
	if !ok {
		return
	}
	q, err := auditQueryFrom(r.URL.Query())
	if err != nil {
		c.app.RenderPageWithError(w, r, http.StatusBadRequest, "admin_audit", "admin.audit_bad_filter", auditPage{Staff: staff})
		return
	}
	out := &csvResponse{w: w, name: fmt.Sprintf("audit-%s.csv", time.Now().UTC().Format("20060102-150405"))}
	if _, err := c.app.ExportAudit(ctx, staff.ID, out, q); err != nil {
		if !out.started {
			c.app.ServerError(w, r, err)
			return
		}
		// The status line is gone by now; the log and a cut-short file say it.
		c.log.ErrorContext(ctx, "audit export failed", "request_id", idp.RequestID(ctx), "error", err)
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
