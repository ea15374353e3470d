package idp

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

// renderPage renders a page with the common view (branding, user, CSRF token).
func (a *App) renderPage(w http.ResponseWriter, r *http.Request, status int, name, errKey string, data any) {
	ctx := r.Context()
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	if !a.sessionLoaded(ctx) {
		a.renderStatic(w, r, status, name, errKey, data)
		return
	}
	v := view{
		Brand: a.cfg.Branding,
		User:  a.currentUser(ctx),
		CSRF:  a.csrfToken(ctx),
		Error: errKey,
		Data:  data,
	}
	if v.User != nil {
		v.Staff = a.RoleFor(v.User.Groups) != RoleNone
	}
	if l, ok := data.(interface{ lockEnd() string }); ok {
		v.LockedUntil = l.lockEnd()
	} else if l, ok := data.(interface{ LockEnd() string }); ok {
		v.LockedUntil = l.LockEnd() // a plug-in's page (another package)
	}
	if b, ok := data.(interface{ backLink() (string, string) }); ok {
		v.Back, v.BackLabel = b.backLink()
	}
	// Errors only: a success page of a POST (new recovery codes, shown
	// once) keeps its address.
	if g, ok := data.(interface{ getURL() string }); ok && r.Method == http.MethodPost && status >= http.StatusBadRequest {
		v.GetURL = g.getURL()
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

// RenderPageWithError is RenderPage with an error shown on the page:
// errKey is its message's catalog key.
func (a *App) RenderPageWithError(w http.ResponseWriter, r *http.Request, status int, name, errKey string, data any) {
	a.renderPage(w, r, status, name, errKey, data)
}

// AddPages parses more pages (templates/pages/NAME.html of the app's
// templates, so white-labelling applies) for RenderPage, each inside the
// shared layout and with the message catalog. Call it before serving.
func (a *App) AddPages(names ...string) error { return a.pages.add(names...) }

// ErrorPage is a bilingual error page: catalog keys of its title and
// message, and the link it offers. Zero Back and BackLabel offer the way
// to the user's own page (the login when nobody is signed in).
type ErrorPage struct {
	Title, Message  string
	Back, BackLabel string
}

// ConsoleError is a 403/404 page inside the console: it offers the way
// back to the console page back (a user's page), or to the console's
// start, instead of the login page.
func ConsoleError(message, back string) ErrorPage {
	back = consoleBack(back)
	label := "admin.back_to_console"
	if strings.HasPrefix(back, ConsolePath+"user") {
		label = "admin.back_to_user"
	}
	return ErrorPage{Title: "error.title", Message: message, Back: back, BackLabel: label}
}

// backLink gives the error page its way on (see view.Back).
func (e ErrorPage) backLink() (string, string) { return e.Back, e.BackLabel }

// renderStatic renders a page without the session: no user, no form token,
// for pages shown when the session is unavailable or broken.
func (a *App) renderStatic(w http.ResponseWriter, r *http.Request, status int, name, errKey string, data any) {
	v := view{Brand: a.cfg.Branding, Error: errKey, Data: data}
	if err := a.pages.render(w, status, name, v); err != nil {
		ctx := r.Context()
		a.log.ErrorContext(ctx, "rendering page failed", "request_id", requestID(ctx), "page", name, "error", err)
		http.Error(w, "internal error / 内部エラー", http.StatusInternalServerError)
	}
}

func (a *App) renderError(w http.ResponseWriter, r *http.Request, status int, titleKey, msgKey string) {
	a.renderPage(w, r, status, "error", "", ErrorPage{Title: titleKey, Message: msgKey})
}

// ServerError answers a request that failed with err as the app's own
// pages do: the bilingual 503 page with Retry-After for an outage (see
// IsUnavailable), the 500 page for a bug, logged and counted once.
func (a *App) ServerError(w http.ResponseWriter, r *http.Request, err error) {
	a.serverError(w, r, err)
}

// audit writes a security event. A failure to write it is logged loudly but
// does not fail the user's request.
func (a *App) audit(ctx context.Context, typ, subject string, detail map[string]string) {
	if err := a.auditAs(ctx, typ, subject, subject, detail); err != nil {
		a.log.ErrorContext(ctx, "audit write failed", "request_id", requestID(ctx), "event", typ, "error", err)
	}
}

// AuditAs writes a security event done by actor to subject's account, with
// the time, client address and request ID of the request in ctx, in the
// request's write transaction. Unlike Audit it returns a failed write, for
// actions that must not happen unrecorded.
func (a *App) AuditAs(ctx context.Context, typ, actor, subject string, detail map[string]string) error {
	return a.auditAs(ctx, typ, actor, subject, detail)
}

// auditAs writes a security event done by actor to subject's account.
func (a *App) auditAs(ctx context.Context, typ, actor, subject string, detail map[string]string) error {
	e := store.AuditEvent{
		Time:      a.now(),
		Type:      typ,
		Actor:     actor,
		Subject:   subject,
		ClientIP:  clientIP(ctx),
		RequestID: requestID(ctx),
		Detail:    detail,
	}
	if err := a.store.AppendAudit(ctx, e); err != nil {
		return err
	}
	// The sink hears of the event once the log holds it: after the
	// request's unit of work commits.
	store.OnCommit(ctx, func() { a.recordAudit(context.WithoutCancel(ctx), e) })
	return nil
}

type userPage struct {
	AuthTime string
	AMR      []string
	Trusted  []trustedRow
	// ConsentOn: a consent step is plugged in; Consents are the
	// remembered ones.
	ConsentOn bool
	Consents  []consentRow
}

type consentRow struct {
	Service, Protocol, Given string
	Name                     config.Localized
	Released                 []string
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
	if a.consent != nil {
		page.ConsentOn = true
		consents, err := a.consent.Remembered(r.Context(), u.ID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		for _, c := range consents {
			page.Consents = append(page.Consents, consentRow{Service: c.Service, Protocol: c.Protocol,
				Given: formatWhen(c.Given), Name: c.Name, Released: c.Released})
		}
	}
	a.renderPage(w, r, http.StatusOK, "user", "", page)
}

// handleLogout is the ☰ menu's Logout and the confirmed protocol logout:
// it ends the session and tells every service that got a login from it.
func (a *App) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	next := a.sessions.PopString(ctx, sessLogoutNext)
	opts := LogoutOptions{Via: "menu"}
	if protocol, id, ok := strings.Cut(a.sessions.PopString(ctx, sessLogoutAskedBy), "\x00"); ok {
		opts.AskedBy = &Participant{Protocol: protocol, ID: id}
	}
	if next != "" {
		opts.Via = "protocol_confirmed"
		if u, err := url.Parse(next); err == nil && u.IsAbs() && (u.Scheme != a.publicURL.Scheme || u.Host != a.publicURL.Host) {
			opts.Finish = next
		}
	}
	target, err := a.Logout(ctx, opts)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if u, err := url.Parse(target); err == nil && u.IsAbs() {
		a.RedirectOut(w, r, target)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// ConfirmLogout is for a protocol logout that does not prove it comes from
// an application the user signed in to (an OIDC end_session without a
// valid id_token_hint): anyone can make a browser send one. It ends
// nothing; when someone is signed in it remembers next (a target the
// front-end validated) and returns the path of a page that asks the user,
// whose form posts to /logout with the CSRF token. With nobody signed in
// there is nothing to end and it returns next itself.
//
// askedBy, when given, is the application the request names (unproven):
// if it has no way to be told of the logout, the results do not list it
// as possibly still signed in, since it asked for the logout itself. An
// application that can be told is told all the same.
func (a *App) ConfirmLogout(ctx context.Context, next string, askedBy ...Participant) string {
	if a.currentUser(ctx) == nil {
		return next
	}
	a.sessions.Put(ctx, sessLogoutNext, next)
	if len(askedBy) > 0 && askedBy[0].ID != "" {
		a.sessions.Put(ctx, sessLogoutAskedBy, askedBy[0].Protocol+"\x00"+askedBy[0].ID)
	}
	return "/logout/confirm"
}

func (a *App) handleLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	if a.currentUser(r.Context()) == nil {
		http.Redirect(w, r, "/logout", http.StatusSeeOther)
		return
	}
	// The services that the logout will tell.
	var page logoutPage
	for i, p := range a.participants(r.Context()) {
		page.Rows = append(page.Rows, logoutRow{N: i, Name: cmpOr(p.Name, p.ID)})
	}
	a.renderPage(w, r, http.StatusOK, "logout_confirm", "", page)
}

func (a *App) handleLoggedOut(w http.ResponseWriter, r *http.Request) {
	a.renderPage(w, r, http.StatusOK, "logged_out", "", nil)
}

type outboxPage struct{ Messages []OutboxMessage }

func (a *App) handleDevOutbox(w http.ResponseWriter, r *http.Request) {
	a.renderPage(w, r, http.StatusOK, "dev_outbox", "", outboxPage{Messages: a.outbox.Messages()})
}
