package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// Subject of the mail that carries a one-time password (from the manual).
const otpSubject = testenv.OTPSubject

// testSecret is the security.secret_key every node of a test shares.
const testSecret = "0123456789abcdef0123456789abcdef-cluster"

// baseConfig is a production-style config for a private slapd and SMTP
// server; the caller sets the store and the public URL.
func baseConfig(t *testing.T, ls *testldap.Server, smtp *testsmtp.Server) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.ShutdownTimeout = 10 * time.Second
	cfg.Server.ShutdownDelay = 0 // TestShutdownTellsBalancerFirst sets one
	cfg.LDAP.URLs = []string{ls.URL}
	cfg.LDAP.BindDN = testldap.ServiceDN
	cfg.LDAP.BindPassword = config.SecretValue(testldap.ServicePassword)
	cfg.LDAP.UserBaseDN = testldap.PeopleDN
	cfg.LDAP.DisabledFilter = "(employeeType=disabled)"
	cfg.LDAP.DialTimeout = 2 * time.Second
	cfg.LDAP.OperationTimeout = 2 * time.Second
	cfg.Security.SecretKey = config.SecretValue(testSecret)
	cfg.Mail.From = "ninsho-qa@campus.example"
	cfg.Mail.SMTP.Host = smtp.Host()
	cfg.Mail.SMTP.Port = smtp.Port()
	cfg.Mail.SMTP.TLS = config.SMTPNoTLS
	cfg.Log.Level = "warn"
	return cfg
}

// node is one `idp serve` running in this process on its own listener.
type node struct {
	name   string
	url    string
	cfg    config.Config
	log    *testenv.SyncBuffer
	ln     *killableListener
	cancel context.CancelFunc
	done   chan error
	alive  atomic.Bool
	once   sync.Once

	// endDelay ends server.shutdown_delay early when closed.
	endDelay chan struct{}
}

// startNode runs serve with cfg on a fresh loopback listener until the
// test ends (or kill/stop).
func startNode(t *testing.T, name string, cfg config.Config) *node {
	t.Helper()
	n, err := launchNode(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.register(t)
	return n
}

// launchNode starts a node; it may run outside the test goroutine.
func launchNode(name string, cfg config.Config) (*node, error) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n := &node{name: name, url: "http://" + inner.Addr().String(), cfg: cfg, log: &testenv.SyncBuffer{},
		ln: &killableListener{Listener: inner}, done: make(chan error, 1), endDelay: make(chan struct{})}
	logger := slog.New(slog.NewJSONHandler(n.log, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	ready := make(chan struct{})
	go func() {
		n.done <- serve(ctx, &n.cfg, logger, &extras{ready: func(string) { close(ready) }, endDelay: n.endDelay}, n.ln)
	}()
	select {
	case <-ready:
	case err := <-n.done:
		cancel()
		return nil, fmt.Errorf("node %s did not start: %v\n%s", name, err, n.log.String())
	case <-time.After(30 * time.Second):
		cancel()
		return nil, fmt.Errorf("node %s did not start in time", name)
	}
	n.alive.Store(true)
	return n, nil
}

// register stops the node when t ends and shows its log if t failed.
func (n *node) register(t *testing.T) {
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() {
			t.Logf("log of node %s:\n%s", n.name, testenv.LastLines(n.log.String(), 30))
		}
	})
}

// stop shuts the node down gracefully; later calls do nothing.
func (n *node) stop(t *testing.T) { n.shutdown(t, false) }

// kill drops the node as a crash would: the listener and every open
// connection close at once and requests in flight get no answer. What the
// process leaves behind is then shut down.
func (n *node) kill(t *testing.T) {
	t.Helper()
	n.alive.Store(false)
	n.ln.kill()
	n.shutdown(t, true)
}

func (n *node) shutdown(t *testing.T, killed bool) {
	t.Helper()
	n.once.Do(func() {
		n.alive.Store(false)
		n.cancel()
		select {
		case err := <-n.done:
			// A killed node's server stops on its dead listener.
			if err != nil && !killed {
				t.Errorf("node %s: serve: %v", n.name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("node %s did not stop", n.name)
		}
	})
}

// killableListener remembers its connections so a crash can cut them.
type killableListener struct {
	net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns = append(l.conns, c)
	return c, nil
}

func (l *killableListener) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.killed = true
	l.Listener.Close()
	for _, c := range l.conns {
		c.Close()
	}
}

// balancer is a round-robin HTTP load balancer in front of the nodes: every
// request goes to the next live node, so a flow's steps alternate.
type balancer struct {
	url   string
	nodes []*node
	next  atomic.Uint64
	mu    sync.Mutex
	trace []string // which node served each request, in order
	srv   *http.Server
}

// newBalancer listens on loopback; its URL is the nodes' public URL, so
// start it before the nodes and attach them with serveNodes.
func newBalancer(t *testing.T) (*balancer, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &balancer{url: "http://" + ln.Addr().String()}, ln
}

func (b *balancer) serveNodes(t *testing.T, ln net.Listener, nodes ...*node) {
	b.nodes = nodes
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			n := r.In.Context().Value(nodeKey{}).(*node)
			target, _ := url.Parse(n.url)
			r.SetURL(target)
			r.Out.Host = r.In.Host // the app sees its public host
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.pick()
		if n == nil {
			http.Error(w, "no live node", http.StatusServiceUnavailable)
			return
		}
		b.mu.Lock()
		b.trace = append(b.trace, n.name+" "+r.Method+" "+r.URL.Path)
		b.mu.Unlock()
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nodeKey{}, n)))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
}

type nodeKey struct{}

func (b *balancer) pick() *node {
	for range len(b.nodes) {
		n := b.nodes[b.next.Add(1)%uint64(len(b.nodes))]
		if n.alive.Load() {
			return n
		}
	}
	return nil
}

// served returns and clears the trace of which node served what.
func (b *balancer) served() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.trace
	b.trace = nil
	return out
}

// browser is the shared test browser, on the balancer (or one node), with
// the login steps these tests take; every hop goes through the balancer
// separately.
type browser struct {
	*testenv.Browser
	t *testing.T
}

func newBrowser(t *testing.T, base string) *browser {
	return &browser{Browser: testenv.NewBrowser(t, base), t: t}
}

type page = testenv.Page

// fieldOrEmpty returns a hidden field's value, "" when the page has none.
func fieldOrEmpty(p page, name string) string {
	v, _ := p.HiddenOK(name)
	return v
}

// login submits ID and password from the login form reached from /user/.
func (b *browser) login(u testldap.User) page {
	b.t.Helper()
	p := b.Follow(b.Get("/user/"))
	if !strings.Contains(p.Body, `name="password"`) {
		b.t.Fatalf("expected the login form, got %d:\n%s", p.Status, p.Body)
	}
	return b.Follow(b.Post("/login", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {p.Hidden(b.t, "tx")},
		"username": {u.ID}, "password": {u.Password}}))
}

var codeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// codeFor waits for the next one-time password mailed to addr.
func codeFor(t *testing.T, smtp *testsmtp.Server, addr string, seen int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var found []string
		for _, m := range smtp.Messages() {
			if m.Subject == otpSubject && testenv.HasAddr(m.To, addr) {
				if c := codeRe.FindStringSubmatch(m.Text); c != nil {
					found = append(found, c[1])
				}
			}
		}
		if len(found) > seen {
			return found[len(found)-1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no new one-time password mailed to %s", addr)
	return ""
}

func mailsTo(smtp *testsmtp.Server, addr string) int { return testenv.MailsTo(smtp, addr, otpSubject) }

// enroll logs u in and registers addr as u's mailed one-time password.
func (b *browser) enroll(u testldap.User, smtp *testsmtp.Server, addr string) {
	b.t.Helper()
	p := b.login(u)
	if !strings.Contains(p.Body, "One-Time Password Settings") {
		b.t.Fatalf("expected the enrollment page, got %d:\n%s", p.Status, p.Body)
	}
	seen := mailsTo(smtp, addr)
	p = b.Follow(b.Post("/user/otp/email/send", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")},
		"tx": {fieldOrEmpty(p, "tx")}, "address": {addr}}))
	code := codeFor(b.t, smtp, addr, seen)
	p = b.Follow(b.Post("/user/otp/email/confirm", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")},
		"tx": {fieldOrEmpty(p, "tx")}, "code": {code}}))
	if !strings.Contains(p.Body, "settings are complete") {
		b.t.Fatalf("enrollment did not complete: %d\n%s", p.Status, p.Body)
	}
}

func (b *browser) logout() {
	b.t.Helper()
	p := b.Follow(b.Get("/user/"))
	b.Post("/logout", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}})
}

func signedIn(p page) bool { return strings.Contains(p.Body, "Signed in as") }
