package store

import (
	"context"
	"strconv"
)

// LimitPagesForTest caps the SQLite file at its current size plus a few
// pages, so the next large writes fail with SQLITE_FULL as on a full disk.
func (db *DB) LimitPagesForTest(ctx context.Context) error {
	var pages int
	if err := db.write.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return err
	}
	var limit int
	return db.write.QueryRowContext(ctx, `PRAGMA max_page_count = `+strconv.Itoa(pages+8)).Scan(&limit)
}

// PauseGroupCommitForTest holds SQLite's group committer before its next
// group until resume is called, and reports how many units wait.
func (db *DB) PauseGroupCommitForTest() (waiting func() int, resume func()) {
	db.group.pause.Lock()
	return func() int { return int(db.group.waiting.Load()) }, db.group.pause.Unlock
}
