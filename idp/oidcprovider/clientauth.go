package oidcprovider

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// limitClientAuth puts the failure budgets of oidc.client_auth_budget in
// front of an endpoint where clients authenticate with a secret. Like the
// password budgets, every request that presents a secret spends first (one
// atomic store write per budget, so parallel guesses cannot overshoot),
// and a request that authenticates gets its attempts back. Past a budget
// the answer is 429 before the secret is checked: with a bcrypt secret,
// checking is what a flood of wrong secrets would make expensive.
func (p *Provider) limitClientAuth(endpoint string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("the request body is not a form"))
			return
		}
		clientID, secret, presented := presentedSecret(r)
		if !presented {
			// Nothing to guess: public clients prove themselves with PKCE
			// and single-use codes.
			next.ServeHTTP(w, r)
			return
		}
		if c, ok := p.storage.clients[clientID]; ok && c.secret != nil && c.secret.known(secret) {
			// The secret is already proven right (a plain secret, or a hashed
			// one accepted before): not a guess and nothing slow to check, so
			// no budget is spent. This keeps the relying party working while
			// someone else spends its budget with wrong secrets, and keeps a
			// store write out of every token request.
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		now := p.now()
		b := p.cfg.OIDC.ClientAuthBudget
		ip := idp.ClientIP(ctx)
		type spend struct {
			key, typ string
			limit    int
			window   time.Duration
		}
		spends := []spend{{"oauth:ip:" + ip, metrics.KeyIP, b.PerIP.Limit, b.PerIP.Window}}
		if _, known := p.storage.clients[clientID]; known {
			// Unknown IDs get no key of their own (no unbounded key space);
			// nothing slow is checked for them anyway.
			spends = append(spends, spend{"oauth:client:" + clientID, metrics.KeyOAuth, b.PerClient.Limit, b.PerClient.Window})
		}
		var spent []string
		var retry time.Time
		refusedBy := ""
		hits := make([]store.CounterHit, len(spends))
		for i, s := range spends {
			hits[i] = store.CounterHit{Key: s.key, Window: s.window}
		}
		counts, err := store.HitAll(ctx, p.storage.store, now, hits...)
		if err != nil {
			p.log.ErrorContext(ctx, "client authentication budget unavailable", "error", err)
			writeOAuthError(w, http.StatusServiceUnavailable, oidc.ErrServerError().WithDescription("the identity provider could not answer the request"))
			return
		}
		for i, s := range spends {
			c := counts[i]
			spent = append(spent, s.key)
			if c.Count <= s.limit {
				continue
			}
			detail := map[string]string{"client_id": auditClientID(clientID, p), "endpoint": endpoint, "budget": s.typ}
			if c.Count == s.limit+1 {
				p.storage.audit(ctx, "oauth_client_auth_locked", "", detail)
			}
			if refusedBy == "" {
				refusedBy = s.typ
			}
			if c.ResetAt.After(retry) {
				retry = c.ResetAt
			}
		}
		if refusedBy != "" {
			p.storage.audit(ctx, "oauth_client_auth_throttled", "", map[string]string{
				"client_id": auditClientID(clientID, p), "endpoint": endpoint, "budget": refusedBy})
			p.app.Metrics().LimitTripped(metrics.LimitClient, refusedBy)
			secs := int(retry.Sub(now).Seconds() + 0.999)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			writeOAuthError(w, http.StatusTooManyRequests, oidc.ErrSlowDown().WithDescription("too many failed client authentications; retry later"))
			return
		}
		// The outcome is settled when the endpoint writes its status: the
		// failure's audit row or the attempts' return then joins the
		// request's changes, committed before the response goes out.
		settle := func(status int) {
			if status == http.StatusUnauthorized {
				p.storage.audit(ctx, "oauth_client_auth_failed", "", map[string]string{
					"client_id": auditClientID(clientID, p), "endpoint": endpoint})
				return
			}
			// Authenticated (or failed for another reason than the
			// secret): not a guess, so the attempts go back.
			for _, k := range spent {
				if err := p.storage.store.UndoCounter(ctx, k, now); err != nil {
					p.log.WarnContext(ctx, "returning client authentication attempt failed", "error", err)
				}
			}
		}
		sw := &settleWriter{ResponseWriter: w, settle: settle}
		next.ServeHTTP(sw, r)
		sw.done(http.StatusOK)
	})
}

// settleWriter calls settle with the response's status once, before the
// status goes out (or after the handler, if it wrote nothing).
type settleWriter struct {
	http.ResponseWriter
	settle  func(status int)
	settled bool
}

func (s *settleWriter) done(status int) {
	if !s.settled {
		s.settled = true
		s.settle(status)
	}
}

func (s *settleWriter) WriteHeader(code int) {
	s.done(code)
	s.ResponseWriter.WriteHeader(code)
}

func (s *settleWriter) Write(b []byte) (int, error) {
	s.done(http.StatusOK)
	return s.ResponseWriter.Write(b)
}

func (s *settleWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// presentedSecret returns the client ID of a request that presents a
// client secret (HTTP Basic or client_secret in the form).
func presentedSecret(r *http.Request) (clientID, secret string, ok bool) {
	if id, secret, basic := r.BasicAuth(); basic {
		// RFC 6749 2.3.1: both are form-encoded inside the Basic header.
		if unescaped, err := url.QueryUnescape(id); err == nil {
			id = unescaped
		}
		if unescaped, err := url.QueryUnescape(secret); err == nil {
			secret = unescaped
		}
		return id, secret, true
	}
	if r.PostForm.Has("client_secret") {
		return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), true
	}
	return "", "", false
}

// auditClientID keeps caller-chosen strings out of the audit log: only
// registered client IDs are recorded as sent.
func auditClientID(id string, p *Provider) string {
	if _, ok := p.storage.clients[id]; ok {
		return id
	}
	return "(unknown)"
}
