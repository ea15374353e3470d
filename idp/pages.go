package idp

import (
	"context"
	"net/http"
	"strings"

	"github.com/campusidp/campusidp/store"
)

// renderPage renders a page with the common view (branding, user, CSRF token).
func (a *App) renderPage(w http.ResponseWriter, r *http.Request, status int, name, errKey string, data any) {
	ctx := r.Context()
	v := view{
		Brand: a.cfg.Branding,
		User:  a.currentUser(ctx),
		CSRF:  a.csrfToken(ctx),
		Error: errKey,
		Data:  data,
	}
	if v.User != nil {
		v.Staff = a.roleFor(v.User.Groups) != RoleNone
	}
	if l, ok := data.(interface{ lockEnd() string }); ok {
		v.LockedUntil = l.lockEnd()
	} else if l, ok := data.(interface{ LockEnd() string }); ok {
		v.LockedUntil = l.LockEnd() // a plug-in's page (another package)
	}
	v.SignOutOnly = v.User == nil && a.inResetFlow(ctx)
	if f := a.sessions.PopString(ctx, sessFlash); f != "" {
		kind, key, _ := strings.Cut(f, ":")
		switch {
		case kind == "error" && v.Error == "":
			v.Error = key
		case kind == "notice":
			v.Notice = key
		}
	}
	if err := a.pages.render(w, status, name, v); err != nil {
		a.log.ErrorContext(ctx, "rendering page failed", "request_id", requestID(ctx), "page", name, "error", err)
		http.Error(w, "internal error / 内部エラー", http.StatusInternalServerError)
	}
}

type errorData struct{ Title, Message string }

func (a *App) renderError(w http.ResponseWriter, r *http.Request, status int, titleKey, msgKey string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	a.renderPage(w, r, status, "error", "", errorData{Title: titleKey, Message: msgKey})
}

func (a *App) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "error", err)
	a.renderError(w, r, http.StatusInternalServerError, "error.title", "error.internal")
}

// audit writes a security event. A failure to write it is logged loudly but
// does not fail the user's request.
func (a *App) audit(ctx context.Context, typ, subject string, detail map[string]string) {
	if err := a.auditAs(ctx, typ, subject, subject, detail); err != nil {
		a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "event", typ, "error", err)
	}
}

// auditAs writes a security event done by actor to subject's account.
func (a *App) auditAs(ctx context.Context, typ, actor, subject string, detail map[string]string) error {
	return a.store.AppendAudit(ctx, store.AuditEvent{
		Time:      a.now(),
		Type:      typ,
		Actor:     actor,
		Subject:   subject,
		ClientIP:  clientIP(ctx),
		RequestID: requestID(ctx),
		Detail:    detail,
	})
}

type userPage struct {
	AuthTime string
	AMR      []string
	Trusted  []trustedRow
}

// requireLogin returns the signed-in user, or starts a login that comes back
// to this page and returns nil.
func (a *App) requireLogin(w http.ResponseWriter, r *http.Request) *SessionUser {
	ctx := r.Context()
	u := a.currentUser(ctx)
	if u != nil {
		st, err := a.pendingStep(ctx, &LoginTx{})
		if err != nil {
			a.serverError(w, r, err)
			return nil
		}
		if st == stepDone {
			return u
		}
	}
	a.startLocalLogin(w, r, r.URL.Path, AuthRequest{})
	return nil
}

func (a *App) handleUserPage(w http.ResponseWriter, r *http.Request) {
	u := a.requireLogin(w, r)
	if u == nil {
		return
	}
	st := a.authState(r.Context())
	page := userPage{AuthTime: formatWhen(st.AuthTime), AMR: st.AMR}
	list, err := a.TrustedBrowsers(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	for _, tb := range list {
		page.Trusted = append(page.Trusted, trustedRow{ID: tb.ID, Label: tb.Label,
			Created: formatWhen(tb.Created), LastUsed: formatWhen(tb.LastUsed)})
	}
	a.renderPage(w, r, http.StatusOK, "user", "", page)
}

func (a *App) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if u := a.currentUser(ctx); u != nil {
		a.audit(ctx, "logout", u.ID, nil)
	}
	if err := a.sessions.Destroy(ctx); err != nil {
		a.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, "/logout", http.StatusSeeOther)
}

func (a *App) handleLoggedOut(w http.ResponseWriter, r *http.Request) {
	a.renderPage(w, r, http.StatusOK, "logged_out", "", nil)
}

type outboxPage struct{ Messages []OutboxMessage }

func (a *App) handleDevOutbox(w http.ResponseWriter, r *http.Request) {
	a.renderPage(w, r, http.StatusOK, "dev_outbox", "", outboxPage{Messages: a.outbox.Messages()})
}
