package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxGroup bounds how many requests' units one group commit carries.
const maxGroup = 64

// groupCommitter is SQLite's single writer for units of work. SQLite
// admits one writer at a time, and a commit (a WAL append, with
// synchronous=NORMAL a checkpoint now and then) costs about the same for
// one change as for many: so the units that arrive while a commit is
// running are committed together by the next one, in one BEGIN … COMMIT,
// each under a savepoint of its own. A unit that fails (a compare-and-swap
// lost, a constraint) rolls back to its savepoint alone; the others commit.
// Every request still waits until the transaction holding its changes has
// committed: throughput is no longer 1 / (commit latency), and no request
// is told "done" before it is.
//
// PostgreSQL needs none of this: the server has row locks and commits
// concurrent transactions in parallel, so each unit keeps a transaction of
// its own there.
type groupCommitter struct {
	db      *DB
	queue   chan *groupItem
	stop    chan struct{}
	done    sync.WaitGroup
	closing sync.Once
	// mu guards closed: no unit is queued once close began, so the
	// writer's last drain answers every queued one.
	mu     sync.RWMutex
	closed bool
	// waiting counts the units handed over and not yet in a group.
	waiting atomic.Int64
	// pause, in tests, holds the writer before it takes the next group.
	pause sync.RWMutex
}

type groupItem struct {
	ctx    context.Context
	unit   *Unit
	result chan error
}

// errClosed answers units committed after Close.
var errClosed = errors.New("store: closed")

func newGroupCommitter(db *DB) *groupCommitter {
	g := &groupCommitter{db: db, queue: make(chan *groupItem, 4*maxGroup), stop: make(chan struct{})}
	g.done.Add(1)
	go g.run()
	return g
}

// commit hands u to the writer and waits for its commit.
func (g *groupCommitter) commit(ctx context.Context, u *Unit) error {
	it := &groupItem{ctx: ctx, unit: u, result: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return errClosed
	}
	g.waiting.Add(1)
	select {
	case g.queue <- it:
	case <-ctx.Done():
		g.waiting.Add(-1)
		g.mu.RUnlock()
		return ctx.Err()
	}
	g.mu.RUnlock()
	// Once queued, the unit is committed or refused by the writer (which
	// answers every queued unit before it stops): the answer is the only
	// way to know which.
	return <-it.result
}

func (g *groupCommitter) run() {
	defer g.done.Done()
	for {
		var first *groupItem
		select {
		case first = <-g.queue:
		case <-g.stop:
			g.drain()
			return
		}
		g.pause.RLock()
		group := []*groupItem{first}
	more:
		for len(group) < maxGroup {
			select {
			case it := <-g.queue:
				group = append(group, it)
			default:
				break more
			}
		}
		g.waiting.Add(-int64(len(group)))
		g.commitGroup(group)
		g.pause.RUnlock()
	}
}

// drain refuses what is still queued at close.
func (g *groupCommitter) drain() {
	for {
		select {
		case it := <-g.queue:
			it.result <- errClosed
		default:
			return
		}
	}
}

// commitGroup writes the group in one transaction and answers each item.
func (g *groupCommitter) commitGroup(group []*groupItem) {
	// The statements run on the writer's own context: a request that went
	// away while queued must not abort the others' transaction.
	ctx := context.WithoutCancel(group[0].ctx)
	errs := make([]error, len(group))
	tx, err := g.db.write.BeginTx(ctx, nil)
	if err != nil {
		for _, it := range group {
			it.result <- fmt.Errorf("store: commit: %w", err)
		}
		return
	}
	if len(group) == 1 {
		// Alone (no concurrency): no savepoint needed, a failure rolls
		// back the transaction, which holds this unit only.
		if errs[0] = group[0].unit.apply(ctx, tx); errs[0] != nil {
			err = errs[0]
		}
	} else {
		for i, it := range group {
			errs[i] = applySavepoint(ctx, tx, fmt.Sprintf("unit_%d", i), it.unit.apply)
			if errs[i] != nil && isTxBroken(errs[i]) {
				err = errs[i]
				break
			}
		}
	}
	if err == nil {
		err = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	for i, it := range group {
		switch {
		case err != nil && errors.Is(err, ErrConflict):
			it.result <- err
		case err != nil:
			it.result <- fmt.Errorf("store: commit: %w", err)
		case errs[i] != nil && errors.Is(errs[i], ErrConflict):
			it.result <- errs[i]
		case errs[i] != nil:
			it.result <- fmt.Errorf("store: commit: %w", errs[i])
		default:
			it.result <- nil
		}
	}
}

// close stops the writer after the group it is committing.
func (g *groupCommitter) close() {
	g.closing.Do(func() {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		close(g.stop)
	})
	g.done.Wait()
}
