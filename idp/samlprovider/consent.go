package samlprovider

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/consent"
)

// PathConsented is where the consent page sends the browser back.
const PathConsented = "/saml/sso/consented"

// ConsentMode is the SP's consent setting with its default: once for an
// SP whose metadata comes from a federation, none for one with its own.
func (sp *ServiceProvider) ConsentMode() string {
	return sp.Config.ConsentModeOrDefault(sp.Federation != "")
}

// consentRequest describes the release to the SP for the consent step:
// ReleaseFor's required and optional attributes with the user's values
// (attributes without a value are not sent, so not shown).
func (p *Provider) consentRequest(a *authnRequest, u *idp.SessionUser) idp.ConsentRequest {
	sp := a.sp
	name := sp.Info.DisplayName
	if sp.Config.Name != "" {
		name = config.Localized{JA: sp.Config.Name, EN: sp.Config.Name}
	}
	if name == (config.Localized{}) {
		n := sp.displayName()
		name = config.Localized{JA: n, EN: n}
	}
	req := idp.ConsentRequest{
		Protocol: "saml",
		Service:  sp.Entity.EntityID,
		Name:     name,
		Logo:     sp.Info.Logo,
		Terms:    sp.Config.TermsOfUse,
		Mode:     sp.ConsentMode(),
	}
	rel := p.ReleaseFor(sp)
	optional := map[string]bool{}
	for _, n := range rel.Optional {
		optional[n] = true
	}
	for _, attr := range p.releasedAttributes(sp, u, nil) {
		it := idp.ConsentItem{Key: attr.FriendlyName, Required: !optional[attr.FriendlyName]}
		for _, v := range attr.Values {
			if v.NameID != nil {
				it.Values = append(it.Values, v.NameID.Value)
				continue
			}
			it.Values = append(it.Values, v.Value)
		}
		req.Items = append(req.Items, it)
	}
	return req
}

// askConsent runs the consent step. It returns the answer when no page is
// needed; otherwise it parks the request with the login's result, sends
// the browser to the consent page and returns false.
func (p *Provider) askConsent(w http.ResponseWriter, r *http.Request, a *authnRequest, res *idp.AuthResult) (*idp.ConsentResult, bool) {
	gate := p.app.Consent()
	if gate == nil {
		return nil, true // nothing plugged in: release without asking
	}
	ctx := r.Context()
	id := randomID()
	req := p.consentRequest(a, &res.User)
	req.ReturnTo = PathConsented + "?id=" + url.QueryEscape(id)
	c, next, err := gate.Decide(ctx, res.User.ID, req)
	if err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	if c != nil {
		return c, true
	}
	if a.isPassive() {
		// IsPassive forbids any page, the consent page too.
		p.sendStatus(w, r, a, saml.StatusResponder, saml.StatusNoPassive)
		return nil, false
	}
	pa := &pendingAuthn{SP: a.sp.Entity.EntityID, Request: a.xml, RelayState: a.relayState, Result: res}
	if err := p.savePending(ctx, id, pa); err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil, false
}

// handleConsented finishes a request after the consent page: the assertion
// with what the user released, or RequestDenied when they declined.
func (p *Provider) handleConsented(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := p.app.CurrentUser(ctx)
	pa, err := p.loadPending(ctx, r.URL.Query().Get("id"))
	if err != nil {
		p.pendingError(w, r, err)
		return
	}
	gate := p.app.Consent()
	if pa.Result == nil || u == nil || u.ID != pa.Result.User.ID || gate == nil {
		p.showError(w, r, http.StatusBadRequest, "login")
		return
	}
	answer, err := gate.Result(ctx, r.URL.Query().Get("consent"), u.ID)
	switch {
	case errors.Is(err, idp.ErrConsentNotFound):
		p.showError(w, r, http.StatusBadRequest, "login")
		return
	case err != nil:
		p.serverError(w, r, err)
		return
	}
	if _, err := p.takePending(ctx, r.URL.Query().Get("id")); err != nil {
		p.pendingError(w, r, err)
		return
	}
	a, err := p.reparse(pa)
	if err != nil {
		p.refuse(w, r, pa.SP, err)
		return
	}
	if answer.Declined {
		p.sendDenied(w, r, a)
		return
	}
	if a.status != "" {
		p.sendStatus(w, r, a, a.status, a.subStatus)
		return
	}
	s := &sessionProvider{p: p, a: a, consent: answer}
	session := s.session(w, r, pa.Result)
	if session == nil {
		return
	}
	p.respond(w, r, a, p.crewjamRequest(r, a), session, pa.Result)
}

// sendDenied tells the SP the user declined (Responder/RequestDenied, no
// assertion) on a page that says so; the user takes the answer back with
// a button rather than an automatic post, so the page can be read.
func (p *Provider) sendDenied(w http.ResponseWriter, r *http.Request, a *authnRequest) {
	ctx := r.Context()
	xmlBytes, err := p.responseXML(a.acs.Location, a.req.ID, statusOf(saml.StatusResponder, saml.StatusRequestDenied), nil)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	origin, err := originOf(a.acs.Location)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	p.log.InfoContext(ctx, "answering with a SAML status", "request_id", idp.RequestID(ctx),
		"sp", a.sp.Entity.EntityID, "status", saml.StatusRequestDenied)
	p.app.Audit(ctx, "saml_sso_status", "", map[string]string{"sp": a.sp.Entity.EntityID, "status": saml.StatusRequestDenied})
	fields := []consent.Field{{Name: "SAMLResponse", Value: base64.StdEncoding.EncodeToString(xmlBytes)}}
	if a.relayState != "" {
		fields = append(fields, consent.Field{Name: "RelayState", Value: a.relayState})
	}
	w.Header().Set("Content-Security-Policy", strings.Replace(fmt.Sprintf(postCSP, origin), " script-src 'self';", "", 1))
	p.app.RenderPage(w, r, http.StatusOK, "consent_declined", consent.DeclinedPage{
		Service: cmp.Or(a.sp.displayName(), a.sp.Entity.EntityID),
		Action:  a.acs.Location,
		Fields:  fields,
	})
}
