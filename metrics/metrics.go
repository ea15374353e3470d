package metrics

import (
	"database/sql"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Results of a password check (Login).
const (
	LoginSuccess     = "success"
	LoginFailure     = "failure"     // unknown ID, wrong password or disabled account (one answer to the user)
	LoginLocked      = "locked"      // refused because the attempt budget is spent
	LoginUnavailable = "unavailable" // the directory did not answer
)

// Results of a second-factor check (MFA).
const (
	MFASuccess     = "success"
	MFAFailure     = "failure"     // wrong, expired or replayed code
	MFALocked      = "locked"      // the failure budget is spent
	MFAUnavailable = "unavailable" // the store or mail did not answer
)

// Results of an LDAP request and of a mail send.
const (
	ResultOK          = "ok"
	ResultRefused     = "refused"     // the directory answered no (wrong password, no such user)
	ResultUnavailable = "unavailable" // timeout, connection failure, server error
	ResultError       = "error"
)

// Limits that can trip (LimitTripped) and the kinds of key they count on.
const (
	LimitPassword = "password"      // password attempts at login and reset
	LimitOTP      = "otp"           // second-factor code failures
	LimitClient   = "client_secret" // failed client authentication at the OAuth endpoints

	KeyID      = "id"           // one account, from anywhere
	KeyClient  = "client"       // one account from one address without a device cookie
	KeyDevice  = "device"       // one account from one browser holding its device cookie
	KeyIP      = "ip"           // one client address, whatever the account
	KeySession = "session"      // one login transaction or settings session
	KeyOAuth   = "oauth_client" // one OAuth client ID
)

// Classes of failed requests (RequestFailed).
const (
	FailureUnavailable = "unavailable" // store, Redis, directory or mail out of service: 503
	FailureInternal    = "internal"    // a bug: 500
)

// Kinds of issued tokens (TokenIssued).
const (
	TokenCode          = "authorization_code"
	TokenAccess        = "access_token"
	TokenID            = "id_token"
	TokenRefresh       = "refresh_token"
	TokenSAMLAssertion = "saml_assertion"
)

// Metrics is the set of the IdP's metrics, in a registry of its own (New)
// or in the embedding program's (NewIn).
type Metrics struct {
	reg prometheus.Registerer
	// gather serves Handler; nil when the program's registerer is not also
	// a gatherer (the program then serves its metrics itself).
	gather prometheus.Gatherer

	logins   *prometheus.CounterVec
	mfa      *prometheus.CounterVec
	ldap     *prometheus.HistogramVec
	mails    *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	limits   *prometheus.CounterVec
	logouts  *prometheus.CounterVec
	http     *prometheus.HistogramVec
	failures *prometheus.CounterVec
	inFlight prometheus.Gauge
}

// New returns the metrics in a registry of their own, with the Go runtime
// and process collectors; Handler serves that registry. The idp binary uses
// it.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := NewIn(reg)
	if err != nil {
		panic(err) // a fresh registry cannot hold a clashing collector
	}
	return m
}

// NewIn registers the IdP's metrics (idp_*) in reg, the embedding program's
// own registry, and returns them; pass the result as idp.Options.Metrics,
// or pass reg as idp.Options.Registerer. It adds no runtime collectors
// (the program's registry usually has them). Handler serves reg when reg is
// also a prometheus.Gatherer (a *prometheus.Registry is).
func NewIn(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_logins_total",
			Help: "Password checks by result: success, failure, locked, unavailable.",
		}, []string{"result"}),
		mfa: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_mfa_total",
			Help: "Second-factor checks by method (email_otp, totp, recovery_code, trusted_browser) and result.",
		}, []string{"method", "result"}),
		ldap: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idp_ldap_request_duration_seconds",
			Help:    "Duration of directory requests by operation (authenticate, lookup, ping) and result.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "result"}),
		mails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_mail_sends_total",
			Help: "Mails handed to the mail transport, by result (ok, error).",
		}, []string{"result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_tokens_issued_total",
			Help: "Codes, tokens and assertions issued to relying parties, by kind.",
		}, []string{"kind"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_logout_propagation_total",
			Help: "Services told of a logout, by protocol, channel (front, back, none) and final result.",
		}, []string{"protocol", "channel", "result"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_limit_trips_total",
			Help: "Attempts refused by a security limit, by limit and key type (id, client, device, ip, session, oauth_client).",
		}, []string{"limit", "key"}),
		http: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idp_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by route pattern, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_request_failures_total",
			Help: "Requests that failed, by class: unavailable (an outage, answered 503) or internal (a bug, answered 500).",
		}, []string{"class"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idp_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gather = g
	}
	for _, c := range []prometheus.Collector{m.logins, m.mfa, m.ldap, m.mails, m.tokens, m.limits, m.logouts, m.http, m.failures, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	// Series that exist from the start, so rate() and alerts see a zero
	// rather than nothing before the first event.
	for _, r := range []string{LoginSuccess, LoginFailure, LoginLocked, LoginUnavailable} {
		m.logins.WithLabelValues(r)
	}
	for _, c := range []string{FailureUnavailable, FailureInternal} {
		m.failures.WithLabelValues(c)
	}
	for _, r := range []string{ResultOK, ResultError} {
		m.mails.WithLabelValues(r)
	}
	for _, k := range []string{TokenCode, TokenAccess, TokenID, TokenRefresh, TokenSAMLAssertion} {
		m.tokens.WithLabelValues(k)
	}
	return m, nil
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	if m == nil || m.gather == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.gather, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds further collectors (a front-end's own metrics).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	if m == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Login counts a password check with one of the Login* results.
func (m *Metrics) Login(result string) {
	if m != nil {
		m.logins.WithLabelValues(result).Inc()
	}
}

// MFA counts a second-factor check of method with one of the MFA* results.
func (m *Metrics) MFA(method, result string) {
	if m != nil {
		m.mfa.WithLabelValues(method, result).Inc()
	}
}

// LDAPRequest records one directory request: operation is a fixed name
// such as "authenticate", result one of ResultOK, ResultRefused,
// ResultUnavailable.
func (m *Metrics) LDAPRequest(operation, result string, d time.Duration) {
	if m != nil {
		m.ldap.WithLabelValues(operation, result).Observe(d.Seconds())
	}
}

// MailSent counts a mail handed to the transport (ResultOK or ResultError).
func (m *Metrics) MailSent(result string) {
	if m != nil {
		m.mails.WithLabelValues(result).Inc()
	}
}

// TokenIssued counts one issued code, token or assertion; kind is one of the
// Token* constants.
func (m *Metrics) TokenIssued(kind string) {
	if m != nil {
		m.tokens.WithLabelValues(kind).Inc()
	}
}

// LimitTripped counts one attempt refused by limit (a Limit* constant)
// whose budget is counted on key (a Key* constant).
func (m *Metrics) LimitTripped(limit, key string) {
	if m != nil {
		m.limits.WithLabelValues(limit, key).Inc()
	}
}

// LogoutPropagated counts one service's final result at a logout.
func (m *Metrics) LogoutPropagated(protocol, channel, result string) {
	if m != nil {
		m.logouts.WithLabelValues(protocol, channel, result).Inc()
	}
}

// HTTPRequest records a served request. route is the pattern that matched
// ("" for none), never the raw path.
func (m *Metrics) HTTPRequest(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.http.WithLabelValues(route, normalMethod(method), strconv.Itoa(status)).Observe(d.Seconds())
}

// RequestFailed counts a request that failed, class FailureUnavailable or
// FailureInternal.
func (m *Metrics) RequestFailed(class string) {
	if m != nil {
		m.failures.WithLabelValues(class).Inc()
	}
}

// HTTPInFlight adds delta to the number of requests being served.
func (m *Metrics) HTTPInFlight(delta int) {
	if m != nil {
		m.inFlight.Add(float64(delta))
	}
}

// normalMethod keeps arbitrary method strings from becoming label values.
func normalMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "OTHER"
}

// LDAPPoolStats is the state of the directory connection pools.
type LDAPPoolStats struct {
	Open, Idle, InUse   int
	Dials, DialFailures uint64
}

// WatchLDAPPool exports the directory pool's state, read at each scrape.
func (m *Metrics) WatchLDAPPool(stats func() LDAPPoolStats) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&ldapPoolCollector{stats: stats})
}

var (
	ldapOpenDesc = prometheus.NewDesc("idp_ldap_pool_connections",
		"Directory connections by state (idle, in_use).", []string{"state"}, nil)
	ldapDialsDesc = prometheus.NewDesc("idp_ldap_dials_total",
		"Directory connection attempts.", nil, nil)
	ldapDialFailuresDesc = prometheus.NewDesc("idp_ldap_dial_failures_total",
		"Directory connection attempts that failed.", nil, nil)
)

type ldapPoolCollector struct{ stats func() LDAPPoolStats }

func (c *ldapPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ldapOpenDesc
	ch <- ldapDialsDesc
	ch <- ldapDialFailuresDesc
}

func (c *ldapPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(ldapOpenDesc, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(ldapOpenDesc, prometheus.GaugeValue, float64(s.InUse), "in_use")
	ch <- prometheus.MustNewConstMetric(ldapDialsDesc, prometheus.CounterValue, float64(s.Dials))
	ch <- prometheus.MustNewConstMetric(ldapDialFailuresDesc, prometheus.CounterValue, float64(s.DialFailures))
}

// WatchDBPool exports the store's connection pool, read at each scrape.
func (m *Metrics) WatchDBPool(stats func() sql.DBStats) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&dbPoolCollector{stats: stats})
}

var (
	dbConnsDesc = prometheus.NewDesc("idp_store_pool_connections",
		"Store database connections by state (idle, in_use).", []string{"state"}, nil)
	dbWaitsDesc = prometheus.NewDesc("idp_store_pool_waits_total",
		"Times a store request waited for a free connection.", nil, nil)
	dbWaitSecondsDesc = prometheus.NewDesc("idp_store_pool_wait_seconds_total",
		"Time spent waiting for a free store connection.", nil, nil)
)

type dbPoolCollector struct{ stats func() sql.DBStats }

func (c *dbPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dbConnsDesc
	ch <- dbWaitsDesc
	ch <- dbWaitSecondsDesc
}

func (c *dbPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(dbConnsDesc, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(dbConnsDesc, prometheus.GaugeValue, float64(s.InUse), "in_use")
	ch <- prometheus.MustNewConstMetric(dbWaitsDesc, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(dbWaitSecondsDesc, prometheus.CounterValue, s.WaitDuration.Seconds())
}

// StoreWork is the store's cumulative work on its database since it was
// opened (store.DB.Stats).
type StoreWork struct {
	// WriteTransactions are committed transactions that wrote, plus
	// writes run outside a transaction.
	WriteTransactions int64
	// ReadStatements and WriteStatements count every statement executed
	// (transaction control excluded).
	ReadStatements, WriteStatements int64
}

// WatchStoreWork exports the store's statement and transaction counts, read
// at each scrape: the figures behind "store work per login" (divide their
// increase by idp_logins_total's).
func (m *Metrics) WatchStoreWork(work func() StoreWork) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&storeWorkCollector{work: work})
}

var (
	storeWriteTxDesc = prometheus.NewDesc("idp_store_write_transactions_total",
		"Store transactions that wrote and committed (a write outside a transaction counts as one).", nil, nil)
	storeStatementsDesc = prometheus.NewDesc("idp_store_statements_total",
		"Statements the store executed on its database, by kind (read, write).", []string{"kind"}, nil)
)

type storeWorkCollector struct{ work func() StoreWork }

func (c *storeWorkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeWriteTxDesc
	ch <- storeStatementsDesc
}

func (c *storeWorkCollector) Collect(ch chan<- prometheus.Metric) {
	w := c.work()
	ch <- prometheus.MustNewConstMetric(storeWriteTxDesc, prometheus.CounterValue, float64(w.WriteTransactions))
	ch <- prometheus.MustNewConstMetric(storeStatementsDesc, prometheus.CounterValue, float64(w.ReadStatements), "read")
	ch <- prometheus.MustNewConstMetric(storeStatementsDesc, prometheus.CounterValue, float64(w.WriteStatements), "write")
}
