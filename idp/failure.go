package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// ErrUnavailable marks an outage of something the IdP depends on. A
// Directory, Mailer or Store plugged in by an embedding program wraps it
// (fmt.Errorf("...: %w", idp.ErrUnavailable)) for failures that are not the
// request's fault, so the user is told to try again later (503) instead of
// being shown an internal error.
var ErrUnavailable = errors.New("idp: a service the IdP depends on is unavailable")

// retryAfter is what a 503 asks clients to wait, in seconds.
const retryAfter = "30"

// IsUnavailable reports whether err is an outage of the store, Redis, the
// directory or the mail system (unreachable, read-only or full), as
// opposed to a bug. It is the one classification every error page, log
// line and metric follows.
func IsUnavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) ||
		errors.Is(err, ldapstore.ErrDirectoryUnavailable) ||
		errors.Is(err, mail.ErrUnavailable) ||
		store.IsUnavailable(err)
}

// serverError answers a request that failed with err: the bilingual 503
// page with Retry-After for an outage, the 500 page for anything else. It
// logs the failure once and counts it.
func (a *App) serverError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if IsUnavailable(err) {
		a.log.LogAttrs(ctx, slog.LevelWarn, "service unavailable",
			slog.String("request_id", requestID(ctx)), slog.String("path", r.URL.Path), slog.Any("error", err))
		a.metrics.RequestFailed(metrics.FailureUnavailable)
		if r.Method == http.MethodPost && r.URL.Path == "/login" && !errors.Is(err, ldapstore.ErrDirectoryUnavailable) {
			// A login the store failed; checkPassword counts directory
			// outages itself.
			a.observeLogin(loginUnavailable)
		}
		a.renderError(w, r, http.StatusServiceUnavailable, "error.unavailable_title", "error.unavailable")
		return
	}
	a.log.LogAttrs(ctx, slog.LevelError, "request failed",
		slog.String("request_id", requestID(ctx)), slog.String("path", r.URL.Path), slog.Any("error", err))
	a.metrics.RequestFailed(metrics.FailureInternal)
	a.renderError(w, r, http.StatusInternalServerError, "error.title", "error.internal")
}

// failureKey logs and counts a failure that a form page reports in place,
// and returns its message key: "error.unavailable" (503) for an outage,
// "error.internal" (500) otherwise.
func (a *App) failureKey(ctx context.Context, msg string, err error) string {
	if IsUnavailable(err) {
		a.log.WarnContext(ctx, msg, "request_id", requestID(ctx), "error", err)
		a.metrics.RequestFailed(metrics.FailureUnavailable)
		return "error.unavailable"
	}
	a.log.ErrorContext(ctx, msg, "request_id", requestID(ctx), "error", err)
	a.metrics.RequestFailed(metrics.FailureInternal)
	return "error.internal"
}

// sessionLoaded reports whether the request's session may be read.
func (a *App) sessionLoaded(ctx context.Context) bool {
	rs, _ := ctx.Value(ctxRequestState).(*requestState)
	return rs != nil && rs.sessionLoaded
}

// auditRequired writes a security event that must not go unrecorded, done
// by actor to subject's account. Callers write it before the change it
// records and must handle the error: a failed write is returned as an
// outage (ErrUnavailable), so the request answers 503 and the change does
// not happen. (Until the store offers one transaction per request, "before"
// is as close to "in the same transaction" as the change can get.)
func (a *App) auditRequired(ctx context.Context, typ, actor, subject string, detail map[string]string) error {
	if err := a.auditAs(ctx, typ, actor, subject, detail); err != nil {
		return fmt.Errorf("%w: audit %s: %w", ErrUnavailable, typ, err)
	}
	return nil
}

// auditSecurity is auditRequired for an event the user does to their own
// account; no login succeeds without its audit row.
func (a *App) auditSecurity(ctx context.Context, typ, subject string, detail map[string]string) error {
	return a.auditRequired(ctx, typ, subject, subject, detail)
}

// AuditSecurity is auditSecurity for page packages (security keys): write
// it before the change it records and answer a returned error with
// ServerError, so the change never happens unrecorded.
func (a *App) AuditSecurity(ctx context.Context, typ, subject string, detail map[string]string) error {
	return a.auditSecurity(ctx, typ, subject, detail)
}
