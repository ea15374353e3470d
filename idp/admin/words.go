package admin

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/store"
)

// Audit events are shown in words from the message catalog: a helpdesk
// worker on the phone reads "ログイン失敗 / Login failed", not
// "login_failed". A type, detail or value the catalog does not name (a
// newer event, a front-end's own) is shown as recorded.

// auditRow is one audit event as the console shows it.
type auditRow struct {
	ID   int64
	Time string
	// Type is the event type as recorded; TypeURL filters the viewer by it.
	Type      string
	TypeWords idp.Message
	TypeURL   string
	Actor     string
	Subject   string
	ClientIP  string
	Details   []detailRow
}

// detailRow is one detail of an event: its name in words, and its value,
// in words where it is one of a few fixed words.
type detailRow struct {
	Label    idp.Message
	Value    string
	Words    idp.Message
	HasWords bool
}

func (c *Console) newAuditRow(e store.AuditEvent) auditRow {
	return auditRow{ID: e.ID, Time: e.Time.Local().Format("2006-01-02 15:04:05 MST"), Type: e.Type,
		TypeWords: c.words("audit.type."+e.Type, e.Type),
		TypeURL:   "/admin/audit?" + url.Values{"type": {e.Type}}.Encode(),
		Actor:     e.Actor, Subject: e.Subject, ClientIP: e.ClientIP, Details: c.detailRows(e.Detail)}
}

// words is the catalog's text for key, or raw in both languages.
func (c *Console) words(key, raw string) idp.Message {
	if m, ok := c.app.Message(key); ok {
		return m
	}
	return idp.Message{JA: raw, EN: raw}
}

// valueGroup names the catalog group of a detail's fixed-word values.
var valueGroup = map[string]string{
	"budget": "budget", "purpose": "purpose", "reason": "reason", "via": "via",
	"need": "role", "role": "role", "target_role": "role",
}

func (c *Console) detailRows(d map[string]string) []detailRow {
	var rows []detailRow
	for _, k := range slices.Sorted(maps.Keys(d)) {
		v := d[k]
		row := detailRow{Label: c.words("audit.detail."+k, k), Value: v}
		switch k {
		case "action":
			row.Words, row.HasWords = c.app.Message("admin.action_" + strings.ReplaceAll(v, "-", "_"))
		case "methods":
			row.Words, row.HasWords = c.methodWords(v)
		default:
			if g, ok := valueGroup[k]; ok {
				row.Words, row.HasWords = c.app.Message("audit.value." + g + "." + v)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// methodWords names the space-separated factor methods of a detail.
func (c *Console) methodWords(v string) (idp.Message, bool) {
	var ja, en []string
	for _, m := range strings.Fields(v) {
		w, ok := c.app.Message("admin.method_" + m)
		if !ok {
			return idp.Message{}, false
		}
		ja, en = append(ja, w.JA), append(en, w.EN)
	}
	if len(ja) == 0 {
		return c.app.Message("audit.value.none")
	}
	return idp.Message{JA: strings.Join(ja, "、"), EN: strings.Join(en, ", ")}, true
}
