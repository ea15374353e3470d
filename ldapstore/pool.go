package ldapstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// serverRetryAfter is how long a server that failed to connect is tried
// only after the healthy ones, so a dead primary does not cost a dial
// timeout on every new connection.
const serverRetryAfter = 30 * time.Second

var errPoolClosed = errors.New("ldapstore: directory closed")

// failover orders the configured servers for dialling. It is shared by the
// service and bind pools so both learn about a dead server at once.
type failover struct {
	servers   []server
	downUntil []atomic.Int64 // unix nanos; 0 = healthy
	now       func() time.Time
}

func newFailover(servers []server) *failover {
	return &failover{servers: servers, downUntil: make([]atomic.Int64, len(servers)), now: time.Now}
}

// order returns server indexes to try: starting after the server that just
// failed (or at the first one), healthy servers before recently failed
// ones, each group in configuration order. Failed servers stay in the list
// as a last resort, so a single-server setup recovers on the next call.
func (f *failover) order(after int) []int {
	n := len(f.servers)
	now := f.now().UnixNano()
	up := make([]int, 0, n)
	var down []int
	for k := 1; k <= n; k++ {
		i := (after + k) % n
		if after < 0 {
			i = k - 1
		}
		if f.downUntil[i].Load() > now {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	return append(up, down...)
}

func (f *failover) markDown(i int) { f.downUntil[i].Store(f.now().Add(serverRetryAfter).UnixNano()) }
func (f *failover) markUp(i int)   { f.downUntil[i].Store(0) }

// conn is one pooled LDAP connection. raw is the TCP connection under any
// TLS layer: closing it is the one way to interrupt go-ldap promptly.
type conn struct {
	ldap     *ldap.Conn
	raw      net.Conn
	server   int
	lastUsed time.Time
}

// pool keeps at most size connections of one kind. A permit is held for as
// long as a connection is dialled or in use, which bounds open connections:
// new ones are only dialled when no idle one is left.
type pool struct {
	name      string // "service" or "bind", for logs
	cfg       *settings
	log       *slog.Logger
	servers   *failover
	asService bool // bind as the service account right after connecting
	now       func() time.Time

	permits chan struct{}
	closing chan struct{}

	mu     sync.Mutex
	idle   []*conn // most recently used last
	open   int
	inUse  int
	closed bool

	dials        atomic.Uint64
	dialFailures atomic.Uint64
}

func newPool(name string, cfg *settings, servers *failover, asService bool, log *slog.Logger) *pool {
	return &pool{
		name:      name,
		cfg:       cfg,
		log:       log,
		servers:   servers,
		asService: asService,
		now:       time.Now,
		permits:   make(chan struct{}, cfg.PoolSize),
		closing:   make(chan struct{}),
	}
}

// do runs op on a pooled connection. When the connection or server fails
// (network error, timeout, busy, unavailable) op is retried once on a fresh
// connection, dialled starting with the next server. Transport failures are
// returned wrapped in ErrDirectoryUnavailable; LDAP results from op are
// returned as they are, for the caller to interpret.
func (p *pool) do(ctx context.Context, op func(*ldap.Conn) error) error {
	failedServer := -1
	for attempt := 1; ; attempt++ {
		c, err := p.acquire(ctx, failedServer)
		if err != nil {
			return unavailable(err)
		}
		broken, err := p.run(ctx, c, op)
		p.release(c, broken)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return unavailable(fmt.Errorf("%w (%v)", ctxErr, err))
		}
		if !retryable(err) {
			if broken {
				return unavailable(err)
			}
			return err
		}
		if attempt == 2 {
			return unavailable(err)
		}
		p.log.WarnContext(ctx, "ldap operation failed, retrying on a fresh connection",
			"pool", p.name, "server", p.servers.servers[c.server].url, "error", err)
		failedServer = c.server
	}
}

// run executes op with the operation timeout, shortened to the context's
// deadline. Cancelling ctx closes the connection, which aborts op at once.
func (p *pool) run(ctx context.Context, c *conn, op func(*ldap.Conn) error) (broken bool, err error) {
	timeout := p.cfg.OperationTimeout
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return false, context.DeadlineExceeded
	}
	c.ldap.SetTimeout(timeout)
	stop := context.AfterFunc(ctx, func() { _ = c.raw.Close() })
	err = op(c.ldap)
	interrupted := !stop()
	return interrupted || brokenConn(err), err
}

// acquire returns an idle connection or dials a new one. failedServer >= 0
// asks for a fresh connection that avoids the server which just failed.
func (p *pool) acquire(ctx context.Context, failedServer int) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case p.permits <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closing:
		return nil, errPoolClosed
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.permits
		return nil, errPoolClosed
	}
	var stale []*conn
	var found *conn
	if failedServer < 0 {
		for len(p.idle) > 0 {
			c := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if c.ldap.IsClosing() || p.now().Sub(c.lastUsed) > p.cfg.IdleTimeout {
				stale = append(stale, c)
				continue
			}
			found = c
			break
		}
	}
	if found != nil {
		p.inUse++
	}
	p.open -= len(stale)
	p.mu.Unlock()
	for _, c := range stale {
		closeConn(c)
	}
	if found != nil {
		return found, nil
	}

	c, err := p.dial(ctx, failedServer)
	if err != nil {
		<-p.permits
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeConn(c)
		<-p.permits
		return nil, errPoolClosed
	}
	p.open++
	p.inUse++
	p.mu.Unlock()
	return c, nil
}

// release returns c to the pool, or closes it when broken or closed.
func (p *pool) release(c *conn, broken bool) {
	p.mu.Lock()
	p.inUse--
	keep := !broken && !p.closed && !c.ldap.IsClosing()
	if keep {
		c.lastUsed = p.now()
		p.idle = append(p.idle, c)
	} else {
		p.open--
	}
	p.mu.Unlock()
	if !keep {
		closeConn(c)
	}
	<-p.permits
}

// dial connects to the first server that answers, in failover order.
func (p *pool) dial(ctx context.Context, failedServer int) (*conn, error) {
	var errs []error
	for _, i := range p.servers.order(failedServer) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		p.dials.Add(1)
		c, err := p.dialServer(ctx, i)
		if err == nil {
			p.servers.markUp(i)
			return c, nil
		}
		p.dialFailures.Add(1)
		p.servers.markDown(i)
		url := p.servers.servers[i].url
		if p.asService && hasCode(err, ldap.LDAPResultInvalidCredentials) {
			p.log.ErrorContext(ctx, "ldap service account bind rejected; check BindDN and BindPassword",
				"server", url, "bind_dn", p.cfg.BindDN)
		} else {
			p.log.WarnContext(ctx, "ldap connect failed", "pool", p.name, "server", url, "error", err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", url, err))
	}
	return nil, fmt.Errorf("no directory server reachable: %w", errors.Join(errs...))
}

// dialServer connects to one server and prepares the connection: TLS,
// StartTLS and, for the service pool, the service bind. The whole set-up
// is bounded by DialTimeout and ctx.
func (p *pool) dialServer(ctx context.Context, i int) (*conn, error) {
	s := p.servers.servers[i]
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()

	var dialer net.Dialer
	raw, err := dialer.DialContext(dctx, "tcp", s.address)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(dctx, func() { _ = raw.Close() })
	c, err := p.setUp(dctx, s, raw)
	if !stop() {
		if c != nil {
			closeConn(c)
		}
		return nil, fmt.Errorf("connection set-up: %w", dctx.Err())
	}
	if err != nil {
		if c != nil {
			closeConn(c)
		} else {
			_ = raw.Close()
		}
		return nil, err
	}
	c.server = i
	c.lastUsed = p.now()
	return c, nil
}

func (p *pool) setUp(ctx context.Context, s server, raw net.Conn) (*conn, error) {
	transport := raw
	if s.useTLS {
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		transport = tc
	}
	lc := ldap.NewConn(transport, s.useTLS)
	lc.Start()
	c := &conn{ldap: lc, raw: raw}
	lc.SetTimeout(p.cfg.DialTimeout)
	if p.cfg.StartTLS {
		if err := lc.StartTLS(s.tls); err != nil {
			return c, fmt.Errorf("StartTLS: %w", err)
		}
	}
	if p.asService && p.cfg.BindDN != "" {
		if err := lc.Bind(p.cfg.BindDN, p.cfg.BindPassword); err != nil {
			return c, fmt.Errorf("service account bind: %w", err)
		}
	}
	return c, nil
}

// closeConn closes the transport first: go-ldap's Close can otherwise wait
// on a server that stopped answering.
func closeConn(c *conn) {
	_ = c.raw.Close()
	_ = c.ldap.Close()
}

// close shuts the pool: idle connections now, in-use ones on release.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.closing)
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.mu.Unlock()
	for _, c := range idle {
		closeConn(c)
	}
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{
		Open:         p.open,
		Idle:         len(p.idle),
		InUse:        p.inUse,
		Dials:        p.dials.Load(),
		DialFailures: p.dialFailures.Load(),
	}
}
