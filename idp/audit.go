package idp

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	// BeforeID pages back: only events older than the one with this ID.
	BeforeID int64
}

// Values is the filter as form fields (user, actor, type, since, until;
// empty ones left out, times as a datetime-local field sends them), without
// paging: what the console's links and the export's audit row carry.
func (q AuditQuery) Values() url.Values {
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

func (q AuditQuery) filter() store.AuditFilter {
	return store.AuditFilter{Subject: q.User, Actor: q.Actor, Type: q.Type, Since: q.Since, Until: q.Until, BeforeID: q.BeforeID}
}

// ErrBadFilter: an audit filter that does not parse (a time) or is too long.
var ErrBadFilter = errors.New("idp: audit filter not understood")

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
	return time.Time{}, fmt.Errorf("%w: time %q (use 2006-01-02T15:04 or RFC 3339)", ErrBadFilter, s)
}

// AuditEvents returns at most limit events matching q, newest first (limit
// is capped at store.MaxAuditLimit).
func (a *App) AuditEvents(ctx context.Context, q AuditQuery, limit int) ([]store.AuditEvent, error) {
	f := q.filter()
	f.Limit = min(limit, store.MaxAuditLimit)
	return a.store.ListAudit(ctx, f)
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
	for k, v := range q.Values() {
		detail["filter_"+k] = v[0]
	}
	return n, a.auditAs(ctx, "admin_audit_exported", actor, "", detail)
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

// csvSafe keeps a spreadsheet from reading a cell as a formula: cells that
// begin (after any blanks, ideographic spaces included) with = + - @, their
// full-width forms ＝ ＋ － ＠ (which spreadsheets in Japanese locales
// convert to formulas too) or a minus sign, a tab or a carriage return get
// a leading apostrophe. Audit cells carry typed IDs and user agents, so an
// attacker could otherwise plant a formula for staff to open.
func csvSafe(s string) string {
	trimmed := strings.TrimLeft(s, " \u3000")
	if trimmed == "" {
		return s
	}
	r, _ := utf8.DecodeRuneInString(trimmed)
	switch r {
	case '=', '+', '-', '@', '\t', '\r',
		'\uFF1D', '\uFF0B', '\uFF0D', '\uFF20', // ＝ ＋ － ＠
		'\u2212', '\uFE62', '\uFE63', '\uFE66', '\uFE6B': // − and the small forms ﹢ ﹣ ﹦ ﹫
		return "'" + s
	}
	return s
}
