package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// sqliteNode starts one instance on a SQLite file.
func sqliteNode(t *testing.T, ls *testldap.Server, smtp *testsmtp.Server, mutate func(*config.Config)) *node {
	t.Helper()
	cfg := baseConfig(t, ls, smtp)
	cfg.Server.PublicURL = "http://127.0.0.1"
	cfg.Store.DSN = config.SecretValue(filepath.Join(t.TempDir(), "idp.db"))
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(config.Describe(err))
	}
	return startNode(t, "solo", cfg)
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestReadyzFollowsDependencies: /readyz fails while slapd is down and
// recovers by itself when it is back; /healthz (liveness) stays up.
func TestReadyzFollowsDependencies(t *testing.T) {
	ls := testldap.Start(t)
	n := sqliteNode(t, ls, testsmtp.Start(t), nil)

	if code, body := httpGet(t, n.url+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz with everything up = %d %q", code, body)
	}
	ls.Stop()
	code, body := httpGet(t, n.url+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "ldap") || strings.Contains(body, "store") {
		t.Fatalf("/readyz with slapd down = %d %q; want 503 naming ldap only", code, body)
	}
	if code, _ := httpGet(t, n.url+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with slapd down = %d, want 200: the process is alive", code)
	}
	if !strings.Contains(n.log.String(), `"msg":"not ready"`) {
		t.Errorf("the outage was not logged:\n%s", n.log.String())
	}
	ls.Restart(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body = httpGet(t, n.url+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after slapd came back = %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrapeMetrics reads /metrics as Prometheus does.
func scrapeMetrics(t *testing.T, u string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", u, err)
	}
	return fams
}

// metricValue is a counter's value or a histogram's count for the series
// with exactly these labels, 0 if there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
series:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// TestMetricsMoveAsUserLogsIn: a wrong password, an enrollment with a
// mailed code, a wrong and a right code at the next login move exactly the
// counters they should.
func TestMetricsMoveAsUserLogsIn(t *testing.T) {
	ls, smtp := testldap.Start(t), testsmtp.Start(t)
	n := sqliteNode(t, ls, smtp, nil)
	before := scrapeMetrics(t, n.url+"/metrics")

	b := newBrowser(t, n.url)
	wrongPassword := testldap.Alice
	wrongPassword.Password += "x"
	b.login(wrongPassword)
	const addr = "alice.metrics@example.net"
	b.enroll(testldap.Alice, smtp, addr)
	b.logout()
	seen := mailsTo(smtp, addr)
	p := b.login(testldap.Alice)
	code := codeFor(t, smtp, addr, seen)
	for _, typed := range []string{wrongCode(code), code} {
		p = b.Follow(b.Post("/mfa/verify", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")},
			"tx": {p.Hidden(b.t, "tx")}, "code": {typed}}))
	}
	if !signedIn(p) {
		t.Fatalf("login did not complete: %d\n%s", p.Status, p.Body)
	}

	after := scrapeMetrics(t, n.url+"/metrics")
	tests := []struct {
		name   string
		labels map[string]string
		delta  float64
	}{
		{"idp_logins_total", map[string]string{"result": "failure"}, 1},
		{"idp_logins_total", map[string]string{"result": "success"}, 2},
		{"idp_logins_total", map[string]string{"result": "locked"}, 0},
		{"idp_mfa_total", map[string]string{"method": "email_otp", "result": "failure"}, 1},
		{"idp_mfa_total", map[string]string{"method": "email_otp", "result": "success"}, 2}, // enrollment and login
		{"idp_mail_sends_total", map[string]string{"result": "ok"}, 2},
		{"idp_ldap_request_duration_seconds", map[string]string{"operation": "authenticate", "result": "ok"}, 2},
		{"idp_ldap_request_duration_seconds", map[string]string{"operation": "authenticate", "result": "refused"}, 1},
		{"idp_http_request_duration_seconds", map[string]string{"route": "POST /login", "method": "POST", "code": "303"}, 2},
		{"idp_http_request_duration_seconds", map[string]string{"route": "POST /mfa/verify", "method": "POST", "code": "303"}, 1},
	}
	for _, tc := range tests {
		if got := metricValue(after, tc.name, tc.labels) - metricValue(before, tc.name, tc.labels); got != tc.delta {
			t.Errorf("%s%v moved by %v, want %v", tc.name, tc.labels, got, tc.delta)
		}
	}
	if after["idp_ldap_pool_connections"] == nil || after["idp_store_pool_connections"] == nil {
		t.Error("pool gauges missing")
	}
	// The store's work is counted on its connections: logins write.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"idp_store_write_transactions_total", nil},
		{"idp_store_statements_total", map[string]string{"kind": "read"}},
		{"idp_store_statements_total", map[string]string{"kind": "write"}},
	} {
		if got := metricValue(after, c.name, c.labels) - metricValue(before, c.name, c.labels); got <= 0 {
			t.Errorf("%s%v moved by %v during the logins, want > 0", c.name, c.labels, got)
		}
	}
	if tx, w := metricValue(after, "idp_store_write_transactions_total", nil), metricValue(after, "idp_store_statements_total", map[string]string{"kind": "write"}); tx > w {
		t.Errorf("%v write transactions but only %v write statements", tx, w)
	}
}

// TestMetricsEndpointPlacement: /metrics is on the main listener for the
// allowed networks only, or only on the separate metrics listener.
func TestMetricsEndpointPlacement(t *testing.T) {
	ls, smtp := testldap.Start(t), testsmtp.Start(t)
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	tests := []struct {
		name     string
		mutate   func(c *config.Config)
		wantMain int
		wantOps  bool
	}{
		{"defaults: loopback may read", nil, http.StatusOK, false},
		{"loopback not allowed", func(c *config.Config) { c.Metrics.AllowedNetworks = []string{"10.0.0.0/8"} }, http.StatusNotFound, false},
		{"separate listener", func(c *config.Config) { c.Metrics.Listen = free() }, http.StatusNotFound, true},
		{"disabled", func(c *config.Config) { c.Metrics.Enabled = false; c.Metrics.Listen = free() }, http.StatusNotFound, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := sqliteNode(t, ls, smtp, tc.mutate)
			code, body := httpGet(t, n.url+"/metrics")
			if code != tc.wantMain || (code == http.StatusOK) != strings.Contains(body, "idp_logins_total") {
				t.Fatalf("main /metrics = %d (metrics shown: %v), want %d", code, strings.Contains(body, "idp_logins_total"), tc.wantMain)
			}
			if n.cfg.Metrics.Listen == "" {
				return
			}
			ops := "http://" + n.cfg.Metrics.Listen
			resp, err := http.Get(ops + "/metrics")
			if !tc.wantOps {
				if err == nil {
					resp.Body.Close()
					t.Fatal("metrics listener open although metrics are disabled")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for path, want := range map[string]string{"/metrics": "idp_logins_total", "/healthz": "ok", "/readyz": "ready"} {
				if code, body := httpGet(t, ops+path); code != http.StatusOK || !strings.Contains(body, want) {
					t.Errorf("metrics listener %s = %d %.80q", path, code, body)
				}
			}
		})
	}
}

// TestGracefulShutdownDrainsRequests: a request whose body is still
// arriving when the stop signal comes is answered; new connections are
// refused; serve then returns without error.
func TestGracefulShutdownDrainsRequests(t *testing.T) {
	n := sqliteNode(t, testldap.Start(t), testsmtp.Start(t), nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "username=alice&password=x&csrf_token=none"
	fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body[:10])
	// Let the server read the headers: the connection is then active.
	// (Shutdown would wait for it before that too: new connections are
	// only dropped once they have sat idle for seconds.)
	time.Sleep(100 * time.Millisecond)

	n.cancel()
	// Shutdown stops accepting at once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after the stop signal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-n.done:
		t.Fatalf("serve returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}

	fmt.Fprint(conn, body[10:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	resp.Body.Close()
	// The form token is wrong, so the login form comes back refused: what
	// matters is that an answer came.
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("in-flight request answered %d, want 403 (no form token)", resp.StatusCode)
	}
	select {
	case err := <-n.done:
		n.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("serve after draining: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the last request")
	}
}

// TestServeCommandOnPostgresLogsJSON runs `idp serve` itself with a config
// file whose PostgreSQL DSN comes from the environment: the schema is
// created, each request is logged as one JSON line whose request_id is the
// X-Request-Id the client saw, and the command exits 0 on the stop signal.
func TestServeCommandOnPostgresLogsJSON(t *testing.T) {
	ls, smtp := testldap.Start(t), testsmtp.Start(t)
	t.Setenv("IDP_TEST_STORE_DSN", testpg.DSN(t))
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`
server:
  listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1"
  shutdown_delay: 0s
ldap:
  urls: [%q]
  bind_dn: %q
  bind_password: %q
  user_base_dn: %q
store:
  driver: postgres
  dsn: {env: IDP_TEST_STORE_DSN}
security:
  secret_key: %q
mail:
  from: "ninsho-qa@campus.example"
  smtp: {host: %q, port: %d, tls: none}
`, ls.URL, testldap.ServiceDN, testldap.ServicePassword, testldap.PeopleDN, testSecret, smtp.Host(), smtp.Port())
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testenv.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "-config", path}, io.Discard, &stderr) }()

	var addr string
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" {
		for _, rec := range jsonLines(t, stderr.String()) {
			if rec["msg"] == "idp listening" {
				addr, _ = rec["addr"].(string)
			}
		}
		select {
		case code := <-done:
			t.Fatalf("idp serve exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("idp serve did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get("http://" + addr + "/login?secret=never-logged")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id, status := resp.Header.Get("X-Request-Id"), resp.StatusCode
	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz on PostgreSQL = %d %q", code, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("idp serve exit code %d:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("idp serve did not stop")
	}

	logged := false
	for _, rec := range jsonLines(t, stderr.String()) {
		if rec["msg"] == "http request" && rec["request_id"] == id && id != "" {
			logged = rec["path"] == "/login" && rec["status"] == float64(status)
		}
	}
	if !logged {
		t.Errorf("no JSON log line for request %q:\n%s", id, stderr.String())
	}
	if strings.Contains(stderr.String(), "never-logged") {
		t.Error("a query string reached the log")
	}
	if !strings.Contains(stderr.String(), `"dialect":"postgres"`) {
		t.Errorf("the schema was not migrated on PostgreSQL:\n%s", stderr.String())
	}
}

// jsonLines parses a JSON log; every line must be a JSON object.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, rec)
	}
	return out
}
