package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// newMetrics returns the process's metrics, watching the store's and the
// directory's connection pools and the store's statement counts; nil when
// metrics.enabled is false.
func newMetrics(cfg *config.Config, db *store.DB, dir *ldapstore.Directory) *metrics.Metrics {
	if !cfg.Metrics.Enabled {
		return nil
	}
	m := metrics.New()
	m.WatchDBPool(db.PoolStats)
	m.WatchStoreWork(func() metrics.StoreWork {
		s := db.Stats()
		return metrics.StoreWork{WriteTransactions: s.WriteTransactions,
			ReadStatements: s.Statements - s.WriteStatements, WriteStatements: s.WriteStatements}
	})
	m.WatchLDAPPool(func() metrics.LDAPPoolStats {
		s := dir.Stats()
		return metrics.LDAPPoolStats{Open: s.Open, Idle: s.Idle, InUse: s.InUse, Dials: s.Dials, DialFailures: s.DialFailures}
	})
	return m
}

// observedDirectory times every directory request for the metrics.
type observedDirectory struct {
	dir     *ldapstore.Directory
	metrics *metrics.Metrics
}

func (d observedDirectory) Authenticate(ctx context.Context, id, password string) (*ldapstore.User, error) {
	start := time.Now()
	u, err := d.dir.Authenticate(ctx, id, password)
	d.metrics.LDAPRequest("authenticate", ldapResult(err), time.Since(start))
	return u, err
}

func (d observedDirectory) Lookup(ctx context.Context, id string) (*ldapstore.User, error) {
	start := time.Now()
	u, err := d.dir.Lookup(ctx, id)
	d.metrics.LDAPRequest("lookup", ldapResult(err), time.Since(start))
	return u, err
}

func (d observedDirectory) Ping(ctx context.Context) error {
	start := time.Now()
	err := d.dir.Ping(ctx)
	d.metrics.LDAPRequest("ping", ldapResult(err), time.Since(start))
	return err
}

func ldapResult(err error) string {
	switch {
	case err == nil:
		return metrics.ResultOK
	case errors.Is(err, ldapstore.ErrInvalidCredentials), errors.Is(err, ldapstore.ErrUserNotFound):
		return metrics.ResultRefused
	case errors.Is(err, ldapstore.ErrDirectoryUnavailable):
		return metrics.ResultUnavailable
	}
	return metrics.ResultError
}

// sessionBackend is where browser sessions live: the scs store, and the
// store the app binds sessions to users with (the same database, or a
// wrapper that keeps the bindings beside the sessions in Redis).
type sessionBackend struct {
	sessions scs.Store
	store    idp.Store
	redis    *store.RedisSessions // nil unless session.store is redis
}

func openSessions(ctx context.Context, cfg *config.Config, db *store.DB, logger *slog.Logger) (sessionBackend, error) {
	if cfg.Session.Store != config.SessionStoreRedis {
		return sessionBackend{sessions: db.SessionStore(), store: db}, nil
	}
	r := cfg.Session.Redis
	rs, err := store.OpenRedisSessions(ctx, store.RedisConfig{
		Address:         r.Address,
		Username:        r.Username,
		Password:        r.Password.Value(),
		DB:              r.DB,
		TLS:             r.TLS,
		KeyPrefix:       r.KeyPrefix,
		Timeout:         r.Timeout,
		SessionLifetime: cfg.Session.AbsoluteTimeout,
	}, logger)
	if err != nil {
		return sessionBackend{}, fmt.Errorf("session.redis: %w", err)
	}
	return sessionBackend{sessions: rs, store: redisBoundStore{DB: db, sessions: rs}, redis: rs}, nil
}

// redisBoundStore is the database store whose session-user bindings live
// in Redis with the sessions they name, so ending a user's sessions ends
// the Redis sessions.
type redisBoundStore struct {
	*store.DB
	sessions *store.RedisSessions
}

func (s redisBoundStore) BindSessionUser(ctx context.Context, token, userID string) error {
	return s.sessions.BindSessionUser(ctx, token, userID)
}

func (s redisBoundStore) DeleteUserSessions(ctx context.Context, userID, exceptToken string) (int, error) {
	return s.sessions.DeleteUserSessions(ctx, userID, exceptToken)
}

// pinger is a dependency whose reachability decides readiness.
type pinger interface {
	Ping(ctx context.Context) error
}

// readiness answers /readyz: 200 while the store, the directory (and Redis,
// when sessions live there) answer, 503 naming what does not. A load
// balancer then sends users to an instance that can log them in.
type readiness struct {
	checks []namedCheck
	logger *slog.Logger
	// draining is set on SIGTERM: not ready, whatever the checks say.
	draining atomic.Bool
	// failing holds the names that failed last time, to log changes only:
	// probes run every few seconds.
	mu      sync.Mutex
	failing string
}

type namedCheck struct {
	name string
	p    pinger
}

// readyTimeout bounds each check, well below a load balancer's probe timeout.
const readyTimeout = 2 * time.Second

// drain makes every later probe answer 503 (the instance is stopping).
func (rd *readiness) drain() { rd.draining.Store(true) }

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rd.draining.Load() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: shutting down\n"))
		return
	}
	errs := make([]error, len(rd.checks))
	var wg sync.WaitGroup
	for i, c := range rd.checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			errs[i] = c.p.Ping(ctx)
		})
	}
	wg.Wait()
	var down []string
	for i, err := range errs {
		if err != nil {
			down = append(down, rd.checks[i].name)
		}
	}
	rd.logChange(r.Context(), down, errs)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(down) > 0 {
		// Only the names: error texts may carry internal host names.
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s unreachable\n", strings.Join(down, ", "))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (rd *readiness) logChange(ctx context.Context, down []string, errs []error) {
	now := strings.Join(down, ",")
	rd.mu.Lock()
	before := rd.failing
	rd.failing = now
	rd.mu.Unlock()
	switch {
	case now == before:
	case now == "":
		rd.logger.InfoContext(ctx, "ready again", "recovered", before)
	default:
		rd.logger.WarnContext(ctx, "not ready", "unreachable", now, "error", errors.Join(errs...))
	}
}

// checkFunc adapts a readiness method to pinger.
type checkFunc func(ctx context.Context) error

func (f checkFunc) Ping(ctx context.Context) error { return f(ctx) }

// newReadiness checks what the instance needs to log users in: the store
// and Redis must take a write (read-only or full is not ready), the
// directory must answer a search.
func (in *instance) newReadiness(logger *slog.Logger) *readiness {
	checks := []namedCheck{{"store", checkFunc(in.db.Ready)}, {"ldap", observedDirectory{in.dir, in.metrics}}}
	if in.redis != nil {
		checks = append(checks, namedCheck{"redis", checkFunc(in.redis.Ready)})
	}
	return &readiness{checks: checks, logger: logger}
}

// opsHandler serves /metrics, /healthz and /readyz on the separate
// metrics.listen listener.
func (in *instance) opsHandler(ready http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", in.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", ready)
	return mux
}

// startOps opens the metrics.listen listener, if configured. The returned
// stop shuts it down.
func startOps(cfg *config.Config, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	if cfg.Metrics.Listen == "" || !cfg.Metrics.Enabled {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener stopped", "error", err)
		}
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// gcInterval is how often each instance sweeps expired rows. Instances
// sharing a database start at random offsets and the store lets one sweep
// at a time, so more instances do not mean more deleting.
const gcInterval = 5 * time.Minute

// collectGarbage removes expired sessions, transactions and counters, and
// audit events older than retention (0: none), every gcInterval (first
// after a random part of it) until ctx ends.
func collectGarbage(ctx context.Context, db *store.DB, retention time.Duration, logger *slog.Logger) {
	first := time.NewTimer(rand.N(gcInterval))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return
	case <-first.C:
	}
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		sweepOnce(ctx, db, retention, logger, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepOnce runs one sweep and says at info what it removed, per table.
func sweepOnce(ctx context.Context, db *store.DB, retention time.Duration, logger *slog.Logger, now time.Time) {
	var auditBefore time.Time
	if retention > 0 {
		auditBefore = now.Add(-retention)
	}
	res, err := db.Sweep(ctx, now, auditBefore)
	if err != nil {
		if ctx.Err() == nil {
			logger.Warn("removing expired rows failed", "error", err)
		}
		return
	}
	if res.Skipped {
		return // another instance sweeps and logs
	}
	logger.Info("removed expired rows", "records", res.Records, "counters", res.Counters,
		"sessions", res.Sessions, "session_bindings", res.Bindings, "audit_log", res.Audit)
}

func mailResult(err error) string {
	if err != nil {
		return metrics.ResultError
	}
	return metrics.ResultOK
}
