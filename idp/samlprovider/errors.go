package samlprovider

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"

	"github.com/campusidp/campusidp/idp"
)

// Messages of the refusal page, by the code in its URL. The code only
// selects one of these fixed texts.
var refusalMessages = map[string]string{
	"unknown":     "saml.sp_unknown",
	"expired":     "saml.request_expired",
	"invalid":     "saml.request_invalid",
	"logout":      "saml.logout_invalid",
	"login":       "saml.login_expired",
	"internal":    "error.internal",
	"unavailable": "error.unavailable",
}

// errorData is what the "error" page shows: catalog keys.
type errorData struct{ Title, Message string }

// refusalCode sorts a refusal for the user: which text explains it.
func refusalCode(err error) string {
	switch {
	case errors.Is(err, errUnknownSP):
		return "unknown"
	case errors.Is(err, errExpired), errors.Is(err, errReplayed):
		return "expired"
	}
	return "invalid"
}

// refuse turns a request away without answering the SP: it is logged and
// audited, and the user sees why.
func (p *Provider) refuse(w http.ResponseWriter, r *http.Request, spID string, err error) {
	p.refuseAs(w, r, spID, err, refusalCode(err))
}

func (p *Provider) refuseAs(w http.ResponseWriter, r *http.Request, spID string, err error, code string) {
	ctx := r.Context()
	reason := err.Error()
	if len(reason) > 300 {
		reason = reason[:300]
	}
	p.log.WarnContext(ctx, "SAML request refused", "request_id", idp.RequestID(ctx), "sp", spID, "reason", reason)
	p.app.Audit(ctx, "saml_refused", "", map[string]string{"sp": spID, "reason": reason, "path": r.URL.Path})
	p.showError(w, r, http.StatusBadRequest, code)
}

// showError renders the refusal page. A POST from an SP arrives without
// the SameSite=Lax session cookie, and rendering a page there would start
// a session that overwrites the user's; so a POST is redirected to the
// page instead.
func (p *Provider) showError(w http.ResponseWriter, r *http.Request, status int, code string) {
	if r.Method == http.MethodPost {
		http.Redirect(w, r, PathRefused+"?m="+url.QueryEscape(code), http.StatusSeeOther)
		return
	}
	msg, ok := refusalMessages[code]
	if !ok {
		msg = refusalMessages["invalid"]
	}
	title := "saml.error_title"
	switch code {
	case "internal":
		title = "error.title"
	case "unavailable":
		title, status = "error.unavailable_title", http.StatusServiceUnavailable
	}
	p.app.RenderPage(w, r, status, "error", errorData{Title: title, Message: msg})
}

func (p *Provider) handleRefused(w http.ResponseWriter, r *http.Request) {
	p.showError(w, r, http.StatusBadRequest, r.URL.Query().Get("m"))
}

// serverError answers a failure: the app's 503 page for an outage, its 500
// page for a bug (idp.App.ServerError logs and counts either). A POST from an SP
// is redirected to the page instead (see showError).
func (p *Provider) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Method != http.MethodPost {
		p.app.ServerError(w, r, err)
		return
	}
	ctx := r.Context()
	code := "internal"
	if idp.IsUnavailable(err) {
		code = "unavailable"
		p.log.WarnContext(ctx, "SAML request failed: service unavailable", "request_id", idp.RequestID(ctx), "error", err)
	} else {
		p.log.ErrorContext(ctx, "SAML request failed", "request_id", idp.RequestID(ctx), "error", err)
	}
	p.showError(w, r, http.StatusInternalServerError, code)
}

// issuerOf reads the Issuer of an unverified message, for logs only.
func issuerOf(msg *message) string {
	if msg == nil {
		return ""
	}
	var head struct {
		Issuer string `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	}
	if xml.NewDecoder(bytes.NewReader(msg.xml)).Decode(&head) != nil {
		return ""
	}
	if len(head.Issuer) > 200 {
		return head.Issuer[:200]
	}
	return head.Issuer
}
