package metrics

import (
	"database/sql"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the metrics the way Prometheus does, through the handler.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns a counter's or gauge's value, or a histogram's count, for
// the series with exactly these labels; -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
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
	return -1
}

func TestMetricsRecordEvents(t *testing.T) {
	m := New()
	before := scrape(t, m)
	for _, r := range []string{LoginSuccess, LoginFailure, LoginLocked, LoginUnavailable} {
		if v := value(before, "idp_logins_total", map[string]string{"result": r}); v != 0 {
			t.Errorf("idp_logins_total{result=%q} before any login = %v, want a zero series", r, v)
		}
	}

	m.Login(LoginSuccess)
	m.Login(LoginFailure)
	m.Login(LoginFailure)
	m.MFA("email_otp", MFAFailure)
	m.MFA("totp", MFASuccess)
	m.LDAPRequest("authenticate", ResultOK, 3*time.Millisecond)
	m.LDAPRequest("authenticate", ResultRefused, 2*time.Millisecond)
	m.MailSent(ResultOK)
	m.TokenIssued(TokenAccess)
	m.TokenIssued(TokenAccess)
	m.HTTPRequest("GET /login", http.MethodGet, 200, 10*time.Millisecond)
	m.HTTPRequest("", "BREW", 404, time.Millisecond)
	m.HTTPInFlight(1)
	m.WatchLDAPPool(func() LDAPPoolStats { return LDAPPoolStats{Open: 3, Idle: 2, InUse: 1, Dials: 7, DialFailures: 2} })
	m.WatchDBPool(func() sql.DBStats { return sql.DBStats{Idle: 4, InUse: 1, WaitCount: 9} })
	m.WatchStoreWork(func() StoreWork { return StoreWork{WriteTransactions: 5, ReadStatements: 11, WriteStatements: 6} })

	fams := scrape(t, m)
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"idp_logins_total", map[string]string{"result": "success"}, 1},
		{"idp_logins_total", map[string]string{"result": "failure"}, 2},
		{"idp_logins_total", map[string]string{"result": "locked"}, 0},
		{"idp_mfa_total", map[string]string{"method": "email_otp", "result": "failure"}, 1},
		{"idp_mfa_total", map[string]string{"method": "totp", "result": "success"}, 1},
		{"idp_ldap_request_duration_seconds", map[string]string{"operation": "authenticate", "result": "ok"}, 1},
		{"idp_ldap_request_duration_seconds", map[string]string{"operation": "authenticate", "result": "refused"}, 1},
		{"idp_mail_sends_total", map[string]string{"result": "ok"}, 1},
		{"idp_mail_sends_total", map[string]string{"result": "error"}, 0},
		{"idp_tokens_issued_total", map[string]string{"kind": "access_token"}, 2},
		{"idp_tokens_issued_total", map[string]string{"kind": "id_token"}, 0},
		{"idp_http_request_duration_seconds", map[string]string{"route": "GET /login", "method": "GET", "code": "200"}, 1},
		{"idp_http_request_duration_seconds", map[string]string{"route": "unmatched", "method": "OTHER", "code": "404"}, 1},
		{"idp_http_requests_in_flight", nil, 1},
		{"idp_ldap_pool_connections", map[string]string{"state": "idle"}, 2},
		{"idp_ldap_pool_connections", map[string]string{"state": "in_use"}, 1},
		{"idp_ldap_dials_total", nil, 7},
		{"idp_ldap_dial_failures_total", nil, 2},
		{"idp_store_pool_connections", map[string]string{"state": "idle"}, 4},
		{"idp_store_pool_waits_total", nil, 9},
		{"idp_store_write_transactions_total", nil, 5},
		{"idp_store_statements_total", map[string]string{"kind": "read"}, 11},
		{"idp_store_statements_total", map[string]string{"kind": "write"}, 6},
	}
	for _, tc := range tests {
		if got := value(fams, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil && fams["process_start_time_seconds"] == nil {
		t.Errorf("runtime and process metrics missing")
	}
}

// TestNilMetricsIsANoOp: code paths without metrics call the hooks freely.
func TestNilMetricsIsANoOp(t *testing.T) {
	var m *Metrics
	m.Login(LoginSuccess)
	m.MFA("totp", MFASuccess)
	m.LDAPRequest("lookup", ResultOK, time.Millisecond)
	m.MailSent(ResultOK)
	m.TokenIssued(TokenID)
	m.HTTPRequest("/", http.MethodGet, 200, time.Millisecond)
	m.HTTPInFlight(1)
	m.WatchLDAPPool(func() LDAPPoolStats { return LDAPPoolStats{} })
	m.WatchDBPool(func() sql.DBStats { return sql.DBStats{} })
	m.WatchStoreWork(func() StoreWork { return StoreWork{} })
	if err := m.Register(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil metrics handler: %d, want 404", rec.Code)
	}
}

// A program embedding the IdP passes its own registry: the idp_* series
// land there beside the program's, and registering twice is an error
// rather than a panic.
func TestNewInUsesTheProgramsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewIn(reg)
	if err != nil {
		t.Fatalf("NewIn: %v", err)
	}
	m.Login(LoginSuccess)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "idp_logins_total" {
			found = true
		}
		if f.GetName() == "go_goroutines" {
			t.Errorf("NewIn added the runtime collectors to the program's registry")
		}
	}
	if !found {
		t.Fatalf("idp_logins_total not in the program's registry")
	}
	if _, err := NewIn(reg); err == nil {
		t.Fatalf("NewIn twice on one registry: want an error")
	}
	// A registerer that cannot be gathered: the program serves metrics.
	if _, err := NewIn(prometheus.WrapRegistererWithPrefix("x_", prometheus.NewRegistry())); err != nil {
		t.Fatalf("NewIn(wrapped): %v", err)
	}
}

func TestLimitTripsCountedByKeyType(t *testing.T) {
	m := New()
	m.LimitTripped(LimitPassword, KeyID)
	m.LimitTripped(LimitPassword, KeyID)
	m.LimitTripped(LimitPassword, KeyDevice)
	fams := scrape(t, m)
	if got := value(fams, "idp_limit_trips_total", map[string]string{"limit": "password", "key": "id"}); got != 2 {
		t.Errorf("password/id trips = %v, want 2", got)
	}
	if got := value(fams, "idp_limit_trips_total", map[string]string{"limit": "password", "key": "device"}); got != 1 {
		t.Errorf("password/device trips = %v, want 1", got)
	}
	var nilMetrics *Metrics
	nilMetrics.LimitTripped(LimitPassword, KeyIP) // must not panic
}
