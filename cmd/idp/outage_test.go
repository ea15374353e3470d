package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/internal/testredis"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// The outage page's title, in both languages (templates/messages.yaml).
const (
	unavailableJA = "ただいまサービスを利用できません"
	unavailableEN = "Service temporarily unavailable"
)

// checkUnavailable fails unless p is the bilingual 503 page with Retry-After.
func checkUnavailable(t *testing.T, what string, p page) {
	t.Helper()
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" ||
		!strings.Contains(p.Body, unavailableJA) || !strings.Contains(p.Body, unavailableEN) {
		t.Errorf("%s during the outage = %d (Retry-After %q), want the bilingual 503 page:\n%s",
			what, p.Status, p.Header.Get("Retry-After"), p.Body)
	}
}

// sumSeries adds up every series of a metric whose labels include want.
func sumSeries(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	f := fams[name]
	if f == nil {
		return 0
	}
series:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestClusterPostgresOutageIs503: two instances with sessions in Redis on
// a PostgreSQL of the test's own. PostgreSQL stops in the middle of a
// login: every answer that needs it is the bilingual 503 page with
// Retry-After, counted as unavailable, and no answer is a 500. When it is
// back, the next login works without restarting either instance.
func TestClusterPostgresOutageIs503(t *testing.T) {
	pg := testpg.StartPrivate(t)
	ls, smtp := testldap.Start(t), testsmtp.Start(t)
	prefix := testredis.Prefix(t)
	lb, ln := newBalancer(t)
	var nodes []*node
	for _, name := range []string{"A", "B"} {
		cfg := baseConfig(t, ls, smtp)
		cfg.Server.PublicURL = lb.url
		cfg.Store.Driver = config.StorePostgres
		cfg.Store.DSN = config.SecretValue(pg.DSN())
		cfg.Session.Store = config.SessionStoreRedis
		cfg.Session.Redis.Address = testredis.Addr()
		cfg.Session.Redis.KeyPrefix = prefix
		if err := cfg.Validate(); err != nil {
			t.Fatal(config.Describe(err))
		}
		nodes = append(nodes, startNode(t, name, cfg))
	}
	lb.serveNodes(t, ln, nodes...)
	metricsOf := func() []map[string]*dto.MetricFamily {
		var out []map[string]*dto.MetricFamily
		for _, n := range nodes {
			out = append(out, scrapeMetrics(t, n.url+"/metrics"))
		}
		return out
	}
	before := metricsOf()

	b := newBrowser(t, lb.url)
	form := b.Follow(b.Get("/user/"))
	if !strings.Contains(form.Body, `name="password"`) {
		t.Fatalf("expected the login form, got %d:\n%s", form.Status, form.Body)
	}
	tx := form.Hidden(t, "tx")

	pg.Stop(t)
	const rounds = 2 // every request alternates nodes: both see the outage
	for range rounds {
		checkUnavailable(t, "POST /login", b.Post("/login", url.Values{"csrf_token": {form.Hidden(t, "csrf_token")},
			"tx": {tx}, "username": {testldap.Alice.ID}, "password": {testldap.Alice.Password}}))
		checkUnavailable(t, "GET /login", b.Get("/login?tx="+url.QueryEscape(tx)))
		checkUnavailable(t, "GET /user/", b.Get("/user/"))
	}
	for _, n := range nodes {
		if code, _ := httpGet(t, n.url+"/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("node %s /readyz during the outage = %d, want 503", n.name, code)
		}
	}

	after := metricsOf()
	var unavailable, logins, internal, http500 float64
	for i := range nodes {
		unavailable += sumSeries(after[i], "idp_request_failures_total", map[string]string{"class": "unavailable"}) -
			sumSeries(before[i], "idp_request_failures_total", map[string]string{"class": "unavailable"})
		logins += sumSeries(after[i], "idp_logins_total", map[string]string{"result": "unavailable"}) -
			sumSeries(before[i], "idp_logins_total", map[string]string{"result": "unavailable"})
		internal += sumSeries(after[i], "idp_request_failures_total", map[string]string{"class": "internal"})
		http500 += sumSeries(after[i], "idp_http_request_duration_seconds", map[string]string{"code": "500"})
	}
	if unavailable != 3*rounds || logins != rounds {
		t.Errorf("counted %v unavailable requests and %v unavailable logins, want %d and %d", unavailable, logins, 3*rounds, rounds)
	}
	if internal != 0 || http500 != 0 {
		t.Errorf("the outage was counted as %v internal failures and %v HTTP 500s, want none", internal, http500)
	}
	for _, n := range nodes {
		if log := n.log.String(); strings.Contains(log, `"level":"ERROR"`) {
			t.Errorf("node %s logged the outage as an error:\n%s", n.name, log)
		}
	}

	pg.Start(t)
	p := b.login(testldap.Alice)
	if p.Status != http.StatusOK || !(signedIn(p) || strings.Contains(p.Body, "One-Time Password Settings")) {
		t.Fatalf("the first login after PostgreSQL came back = %d:\n%s", p.Status, p.Body)
	}
}
