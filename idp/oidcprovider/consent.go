package oidcprovider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/consent"
)

// pathConsented is where the consent page sends the browser back.
const pathConsented = "/authorize/consented"

// consentApp is what the consent step needs from the app beyond App; an
// *idp.App has it. An App without it releases without asking.
type consentApp interface {
	Consent() idp.ConsentGate
	CurrentUser(ctx context.Context) *idp.SessionUser
}

func (p *Provider) consentGate() (idp.ConsentGate, consentApp) {
	ca, ok := p.app.(consentApp)
	if !ok {
		return nil, nil
	}
	return ca.Consent(), ca
}

// consentRequest lists what the client would receive: one item per
// granted scope that releases claims the user has values for. The claims
// of a scope the client lists in optional_scopes are optional (released
// only when ticked); those of every other granted scope are required, as
// the application asked for them and the university allowed it. The
// subject ("sub") always goes and is not an item.
func (p *Provider) consentRequest(a *authRequest, c *client) idp.ConsentRequest {
	name := c.cfg.Name
	if name == "" {
		name = c.cfg.ID
	}
	req := idp.ConsentRequest{
		Protocol: "oidc",
		Service:  c.cfg.ID,
		Name:     config.Localized{JA: name, EN: name},
		Logo:     c.cfg.LogoURI,
		Terms:    c.cfg.TermsOfUse,
		Mode:     c.cfg.ConsentModeOrDefault(),
	}
	m := p.storage.claims
	for _, scope := range a.Scopes {
		it := idp.ConsentItem{Key: scope, Required: !slices.Contains(c.cfg.OptionalScopes, scope)}
		for _, cl := range m.claims {
			if cl.Scope != scope {
				continue
			}
			for _, v := range m.values(a.User, cl) {
				it.Values = append(it.Values, cl.Name+": "+v)
			}
		}
		if len(it.Values) > 0 {
			req.Items = append(req.Items, it)
		}
	}
	return req
}

// askConsent runs the consent step for a finished login. It returns true
// when the request may go on (its scopes narrowed to what was released);
// false when it answered (the consent page, or an error).
func (p *Provider) askConsent(w http.ResponseWriter, r *http.Request, a *authRequest, c *client, afterForm bool) bool {
	gate, _ := p.consentGate()
	if gate == nil {
		return true
	}
	ctx := p.ctx(r)
	req := p.consentRequest(a, c)
	req.ReturnTo = pathConsented + "?id=" + url.QueryEscape(a.ID)
	req.Ask = slices.Contains(a.Prompt, oidc.PromptConsent)
	answer, next, err := gate.Decide(ctx, a.UserID, req)
	if err != nil {
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return false
	}
	if answer != nil {
		a.Scopes = releasedScopes(a.Scopes, req, answer)
		return true
	}
	if a.promptNone() {
		// prompt=none shows no page: the client learns that consent is
		// needed (OpenID Connect Core 3.1.2.6).
		p.redirectError(w, r, a, &oidc.Error{ErrorType: "consent_required",
			Description: "the user must consent to the release of the requested information"}, afterForm)
		return false
	}
	a.ConsentWait = true
	if err := p.storage.saveAuthRequest(ctx, a); err != nil {
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return false
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return false
}

// releasedScopes drops the scopes of the items the user did not release;
// scopes that release no claims (openid, offline_access) stay.
func releasedScopes(scopes []string, req idp.ConsentRequest, answer *idp.ConsentResult) []string {
	asked := map[string]bool{}
	for _, it := range req.Items {
		asked[it.Key] = true
	}
	return slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return asked[s] && !answer.Releases(s) })
}

// handleConsented finishes an authorization after the consent page: a
// code for what was released, or access_denied when the user declined.
func (p *Provider) handleConsented(w http.ResponseWriter, r *http.Request) {
	ctx := p.ctx(r)
	gate, ca := p.consentGate()
	a, ok := p.requestFromQuery(w, r)
	if !ok {
		return
	}
	u := (*idp.SessionUser)(nil)
	if ca != nil {
		u = ca.CurrentUser(ctx)
	}
	if gate == nil || !a.ConsentWait || a.IsDone || u == nil || u.ID != a.UserID {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, errors.New("authorization request is not waiting for consent"))
		return
	}
	c, ok := p.storage.clients[a.ClientID]
	if !ok {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, errors.New("client no longer registered"))
		return
	}
	answer, err := gate.Result(ctx, r.URL.Query().Get("consent"), u.ID)
	switch {
	case errors.Is(err, idp.ErrConsentNotFound):
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, err)
		return
	case err != nil:
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return
	}
	if answer.Declined {
		// The request is spent: a second visit must not issue a code.
		if err := p.storage.DeleteAuthRequest(ctx, a.ID); err != nil {
			p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
			return
		}
		p.declined(w, r, a, c)
		return
	}
	a.ConsentWait = false
	a.Scopes = releasedScopes(a.Scopes, p.consentRequest(a, c), answer)
	p.issueCode(w, r, a, true)
}

// declined shows the user that nothing was sent, with a link that takes
// access_denied back to the client.
func (p *Provider) declined(w http.ResponseWriter, r *http.Request, a *authRequest, c *client) {
	e := oidc.ErrAccessDenied().WithDescription("the user declined to release the requested information")
	e.State = a.State
	target, err := op.AuthResponseURL(a.RedirectURI, a.GetResponseType(), a.GetResponseMode(), e, p.op.Encoder())
	if err != nil {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, err)
		return
	}
	p.log.InfoContext(r.Context(), "oidc authorization refused", "error", e.ErrorType, "description", e.Description)
	p.app.RenderPage(w, r, http.StatusOK, "consent_declined", consent.DeclinedPage{
		Service: clientName(c),
		Link:    target,
	})
}
