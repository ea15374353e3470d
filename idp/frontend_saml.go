package idp

import (
	"context"
	"net/http"
)

// RenderPage renders one of the app's pages (templates/pages/<name>.html,
// listed in pageNames) with the common view: branding, the signed-in user
// and the form token. Protocol front-ends use it for their own pages, and
// for the "error" page with data carrying Title and Message catalog keys.
func (a *App) RenderPage(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	a.renderPage(w, r, status, name, "", data)
}

// Audit writes a security event about subject's account, with the
// request's client address and ID. A failed write is logged, not returned:
// as for the app's own events, it does not fail the user's request.
func (a *App) Audit(ctx context.Context, typ, subject string, detail map[string]string) {
	a.audit(ctx, typ, subject, detail)
}

// RequestID returns the ID the app gave the request (also sent as the
// X-Request-Id header), for front-ends' log lines.
func RequestID(ctx context.Context) string { return requestID(ctx) }
