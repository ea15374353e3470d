package idp

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/campusidp/campusidp/metrics"
)

// Metrics returns the app's metrics, nil when it runs without. Protocol
// front-ends count what they issue with it, e.g.
// app.Metrics().TokenIssued(metrics.TokenAccess); the methods of a nil
// *metrics.Metrics do nothing.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// Results of a password check, for observeLogin.
const (
	loginOK          = metrics.LoginSuccess
	loginRefused     = metrics.LoginFailure
	loginLocked      = metrics.LoginLocked
	loginUnavailable = metrics.LoginUnavailable
)

// observeLogin counts a password check.
func (a *App) observeLogin(result string) { a.metrics.Login(result) }

// observeFactor counts a second-factor check of method; errKey is the
// message key codeFailure chose for a refusal, "" for a success.
func (a *App) observeFactor(method, errKey string) {
	result := metrics.MFASuccess
	switch errKey {
	case "":
	case "mfa.locked":
		result = metrics.MFALocked
	case "error.unavailable":
		result = metrics.MFAUnavailable
	default:
		result = metrics.MFAFailure
	}
	a.metrics.MFA(method, result)
}

// observeHTTP records every request's latency and status under the route
// pattern that serves it, so the series stay few whatever paths are asked.
func (a *App) observeHTTP(next http.Handler) http.Handler {
	if a.metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, route := a.mux.Handler(r)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		a.metrics.HTTPInFlight(1)
		defer func() {
			a.metrics.HTTPInFlight(-1)
			a.metrics.HTTPRequest(route, r.Method, rec.status, time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeMetrics serves /metrics on the app's own listener when no separate
// metrics listener is configured, to metrics.allowed_networks only; anyone
// else gets the ordinary not-found page.
func (a *App) routeMetrics(mux *http.ServeMux) {
	if a.metrics == nil || !a.cfg.Metrics.Enabled || a.cfg.Metrics.Listen != "" {
		return
	}
	allowed := a.cfg.Metrics.AllowedPrefixes()
	scrape := a.metrics.Handler()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ip, err := netip.ParseAddr(clientIP(r.Context()))
		if err == nil {
			ip = ip.Unmap()
			for _, p := range allowed {
				if p.Contains(ip) {
					scrape.ServeHTTP(w, r)
					return
				}
			}
		}
		a.renderError(w, r, http.StatusNotFound, "error.title", "error.not_found")
	})
}
