package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

const qAppendAudit = `INSERT INTO audit_log
	(occurred_at, event_type, actor, subject, client_ip, user_agent, request_id, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// Audit listing page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditEvent is one entry of the append-only audit log.
type AuditEvent struct {
	ID        int64     // assigned by AppendAudit; increases with every event
	Time      time.Time // when it happened; AppendAudit fills in the current time if zero
	Type      string    // what happened, e.g. "login.success"; required
	Actor     string    // who did it (the user, or staff acting on a user)
	Subject   string    // whom it concerns
	ClientIP  string
	UserAgent string
	RequestID string
	Detail    map[string]string
}

// AuditFilter selects audit events. Zero fields do not filter.
type AuditFilter struct {
	Subject, Actor, Type string
	Since                time.Time // events at or after Since
	Until                time.Time // events before Until
	Limit                int       // page size: DefaultAuditLimit if <= 0, at most MaxAuditLimit
	BeforeID             int64     // paging: only events with ID < BeforeID
}

// AppendAudit adds e to the audit log. e.ID is ignored.
func (db *DB) AppendAudit(ctx context.Context, e AuditEvent) error {
	if e.Type == "" {
		return errors.New("store: append audit: empty event type")
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	detail, err := auditDetail(e)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if u := db.unit(ctx); u != nil {
		u.appendAudit(e)
		return nil
	}
	if _, err := db.q.appendAudit.ExecContext(ctx, nanos(e.Time), e.Type, e.Actor, e.Subject,
		e.ClientIP, e.UserAgent, e.RequestID, detail); err != nil {
		return fmt.Errorf("store: append audit %s: %w", e.Type, err)
	}
	return nil
}

// ListAudit returns the events matching f, newest first. To page, pass the
// ID of the last event of one page as BeforeID of the next.
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var conds []string
	var args []any
	where := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Subject != "" {
		where("subject = $%d", f.Subject)
	}
	if f.Actor != "" {
		where("actor = $%d", f.Actor)
	}
	if f.Type != "" {
		where("event_type = $%d", f.Type)
	}
	if !f.Since.IsZero() {
		where("occurred_at >= $%d", nanos(f.Since))
	}
	if !f.Until.IsZero() {
		where("occurred_at < $%d", nanos(f.Until))
	}
	if f.BeforeID > 0 {
		where("id < $%d", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)

	var q strings.Builder
	q.WriteString(`SELECT id, occurred_at, event_type, actor, subject, client_ip, user_agent, request_id, detail FROM audit_log`)
	if len(conds) > 0 {
		q.WriteString(" WHERE ")
		q.WriteString(strings.Join(conds, " AND "))
	}
	args = append(args, limit)
	fmt.Fprintf(&q, " ORDER BY id DESC LIMIT $%d", len(args))

	rows, err := db.read.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	var events []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at int64
		var detail sql.NullString
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.Actor, &e.Subject, &e.ClientIP, &e.UserAgent, &e.RequestID, &detail); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		e.Time = fromNanos(at)
		if detail.Valid {
			if err := json.Unmarshal([]byte(detail.String), &e.Detail); err != nil {
				return nil, fmt.Errorf("store: list audit: event %d detail: %w", e.ID, err)
			}
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	return events, nil
}
