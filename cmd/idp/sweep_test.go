package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/store"
)

// TestSweepPrunesAuditAndSaysWhat: the sweeper removes audit events older
// than audit.retention (and keeps newer ones) and logs at info how many
// rows it removed from each table.
func TestSweepPrunesAuditAndSaysWhat(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "idp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	retention := config.Default().Audit.Retention
	if retention != 400*24*time.Hour {
		t.Fatalf("default audit.retention = %s, want 400 days", retention)
	}
	for _, e := range []store.AuditEvent{
		{Time: now.Add(-retention - time.Hour), Type: "login_password_ok", Subject: "old"},
		{Time: now.Add(-retention + time.Hour), Type: "login_password_ok", Subject: "kept"},
	} {
		if err := db.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutRecord(ctx, "t", "gone", []byte("x"), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}

	var logs testenv.SyncBuffer
	sweepOnce(ctx, db, retention, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), now)

	events, err := db.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Subject != "kept" {
		t.Fatalf("audit after the sweep = %+v, want only the event inside the retention", events)
	}
	line := logs.String()
	for _, want := range []string{`"level":"INFO"`, `"msg":"removed expired rows"`, `"audit_log":1`, `"records":1`, `"sessions":0`} {
		if !strings.Contains(line, want) {
			t.Errorf("sweep log lacks %s:\n%s", want, line)
		}
	}
}
