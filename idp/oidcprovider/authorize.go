package oidcprovider

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// maxFormBytes bounds the body of the POST forms the provider accepts.
const maxFormBytes = 64 << 10

// errorPage is the data of the app's "error" page: catalog keys.
type errorPage struct{ Title, Message string }

// Kinds of error pages: the request cannot be answered at a redirect_uri.
var (
	pageBadRequest  = errorPage{"error.title", "error.bad_request"}
	pageExpired     = errorPage{"error.title", "login.expired"}
	pageUnavailable = errorPage{"error.unavailable_title", "error.unavailable"}
	pageInternal    = errorPage{"error.title", "error.internal"}
)

func (p *Provider) showError(w http.ResponseWriter, r *http.Request, status int, page errorPage, err error) {
	level := slogLevelFor(status)
	p.log.Log(r.Context(), level, "oidc request answered with an error page",
		"status", status, "path", r.URL.Path, "error", err)
	p.app.RenderPage(w, r, status, "error", page)
}

func (p *Provider) ctx(r *http.Request) context.Context {
	return op.ContextWithIssuer(r.Context(), p.issuer)
}

// handleAuthorize is the authorization endpoint. Until the client and its
// exact redirect_uri are known, every problem is an error page; after that,
// problems go back to the client at redirect_uri.
func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		p.authorizeByPost(w, r)
		return
	default:
		w.Header().Set("Allow", "GET, POST")
		p.showError(w, r, http.StatusMethodNotAllowed, pageBadRequest, errors.New("method not allowed"))
		return
	}
	ctx := p.ctx(r)
	req, err := op.ParseAuthorizeRequest(r, p.op.Decoder())
	if err != nil {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, err)
		return
	}
	c, ok := p.storage.clients[req.ClientID]
	if !ok {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, errors.New("unknown client_id"))
		return
	}
	// Exact match only: no prefix, no pattern, no port freedom.
	if req.RedirectURI == "" || !slices.Contains(c.RedirectURIs(), req.RedirectURI) {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, errors.New("redirect_uri is not registered for the client"))
		return
	}
	if err := p.validateAuthorize(ctx, r, req, c); err != nil {
		p.redirectError(w, r, req, err, false)
		return
	}
	hintSubject, err := op.ValidateAuthReqIDTokenHint(ctx, req.IDTokenHint, p.op.IDTokenHintVerifier(ctx))
	if err != nil {
		p.redirectError(w, r, req, err, false)
		return
	}
	created, err := p.storage.CreateAuthRequest(ctx, req, hintSubject)
	if err != nil {
		p.redirectError(w, r, req, err, false)
		return
	}
	a := created.(*authRequest)
	loginReq := idp.AuthRequest{
		ClientID:   c.GetID(),
		ClientName: clientName(c),
		ReturnTo:   callbackURL(a.ID),
		RequireMFA: a.RequireMFA,
		KeysOnly:   a.RequireKey,
		MaxAge:     a.maxAge(),
		ForceLogin: a.promptLogin(),
		// The callback answers with the continue page (or the consent
		// page): served in the request that finishes the login.
		ReturnInPlace: true,
	}
	// A session that already satisfies the request answers at once (SSO);
	// prompt=none never shows a page.
	if !loginReq.ForceLogin {
		res, err := p.app.CurrentLogin(ctx, loginReq)
		if err != nil {
			p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
			return
		}
		if res != nil {
			p.finish(w, r, a, c, res, false)
			return
		}
	}
	if a.promptNone() {
		p.redirectError(w, r, a, oidc.ErrLoginRequired().WithDescription("no session satisfies the request"), false)
		return
	}
	txID, err := p.app.BeginLogin(ctx, loginReq)
	if err != nil {
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return
	}
	a.LoginTx = txID
	if err := p.storage.saveAuthRequest(ctx, a); err != nil {
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return
	}
	http.Redirect(w, r, idp.LoginURL(txID), http.StatusFound)
}

// authorizeByPost turns a form-posted authorization request into the same
// request by GET. The browser's session cookie (SameSite=Lax) is not sent
// with a cross-site POST, so the request must be seen again with it, or an
// existing session would be missed and replaced.
func (p *Provider) authorizeByPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, err)
		return
	}
	http.Redirect(w, r, pathAuthorize+"?"+r.PostForm.Encode(), http.StatusSeeOther)
}

// validateAuthorize applies op's parameter checks except its redirect_uri
// policy (the exact match above is stricter) and refuses what this
// provider does not offer.
func (p *Provider) validateAuthorize(ctx context.Context, r *http.Request, req *oidc.AuthRequest, c *client) error {
	switch {
	case req.RequestParam != "":
		return oidc.ErrRequestNotSupported().WithDescription("request objects are not supported")
	case r.Form.Has("request_uri"):
		return &oidc.Error{ErrorType: "request_uri_not_supported", Description: "request_uri is not supported"}
	case req.ResponseType == "":
		return oidc.ErrInvalidRequest().WithDescription("response_type is missing")
	case req.ResponseType != oidc.ResponseTypeCode:
		return &oidc.Error{ErrorType: "unsupported_response_type",
			Description: "only the authorization code flow (response_type=code) is supported"}
	}
	switch req.ResponseMode {
	case "", oidc.ResponseModeQuery, oidc.ResponseModeFragment:
	default:
		return oidc.ErrInvalidRequest().WithDescription("response_mode must be query or fragment")
	}
	var err error
	if req.MaxAge, err = op.ValidateAuthReqPrompt(req.Prompt, req.MaxAge); err != nil {
		return err
	}
	if req.Scopes, err = op.ValidateAuthReqScopes(c, req.Scopes); err != nil {
		return err
	}
	return op.ValidateAuthReqCodeChallengeMethod(req.CodeChallenge, req.CodeChallengeMethod)
}

// requestFromQuery loads the authorization request named by the URL's id;
// otherwise it answers: gone when it expired (or never was), 503 in an
// outage, 500 for anything else.
func (p *Provider) requestFromQuery(w http.ResponseWriter, r *http.Request) (*authRequest, bool) {
	a, err := p.storage.loadAuthRequest(p.ctx(r), r.URL.Query().Get("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.showError(w, r, http.StatusGone, pageExpired, err)
		return nil, false
	case idp.IsUnavailable(err):
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return nil, false
	case err != nil:
		p.showError(w, r, http.StatusInternalServerError, pageInternal, err)
		return nil, false
	}
	return a, true
}

// handleCallback finishes a login the login core has completed: the
// transaction must belong to this browser and have every step done.
func (p *Provider) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := p.ctx(r)
	a, ok := p.requestFromQuery(w, r)
	if !ok {
		return
	}
	if a.LoginTx == "" || a.IsDone || a.ConsentWait {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, errors.New("authorization request has no login in progress"))
		return
	}
	c, ok := p.storage.clients[a.ClientID]
	if !ok {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, errors.New("client no longer registered"))
		return
	}
	res, err := p.app.FinishLogin(ctx, a.LoginTx)
	switch {
	case errors.Is(err, idp.ErrLoginIncomplete):
		// A step is missing (the browser came here early): go on with it.
		http.Redirect(w, r, idp.LoginURL(a.LoginTx), http.StatusSeeOther)
		return
	case errors.Is(err, idp.ErrLoginNotFound):
		p.showError(w, r, http.StatusGone, pageExpired, err)
		return
	case err != nil:
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return
	}
	p.finish(w, r, a, c, res, true)
}

// finish completes an authorization with the login's result and sends the
// browser to the client with a code. afterForm: the browser arrives from
// the login pages' form posts, so the last hop must not be a redirect.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, a *authRequest, c *client, res *idp.AuthResult, afterForm bool) {
	if a.RequireMFA && !res.MFA || a.RequireKey && res.FactorMethod != idp.MethodSecurityKey {
		// The login core never finishes without the demanded factor.
		p.showError(w, r, http.StatusInternalServerError, pageInternal, errors.New("login finished without the required second factor"))
		return
	}
	u := userFromSession(res.User)
	sub, err := p.storage.claims.subject(u, c)
	if err != nil {
		p.redirectError(w, r, a, oidc.ErrAccessDenied().WithDescription("the account cannot be identified to this application").WithParent(err), afterForm)
		return
	}
	if a.HintSubject != "" && a.HintSubject != sub && a.promptNone() {
		p.redirectError(w, r, a, oidc.ErrLoginRequired().WithDescription("the signed-in user is not the one hinted"), afterForm)
		return
	}
	a.UserID = res.User.ID
	a.Subject = sub
	a.AuthTime = res.AuthTime
	a.AMR = res.AMR
	a.ACR = p.cfg.OIDC.ACR.For(res.MFA, res.FactorMethod)
	a.User = u
	// The consent step comes after the factor step, before the code.
	if !p.askConsent(w, r, a, c, afterForm) {
		return
	}
	p.issueCode(w, r, a, afterForm)
}

// issueCode marks the request done and sends the browser to the client
// with its code.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, a *authRequest, afterForm bool) {
	ctx := p.ctx(r)
	a.IsDone = true
	if c, ok := p.storage.clients[a.ClientID]; ok {
		sid := p.app.TrackParticipant(ctx, idp.Participant{Protocol: idp.ProtocolOIDC, ID: c.cfg.ID,
			Name: cmp.Or(c.cfg.Name, c.cfg.ID), Subject: a.Subject})
		if c.cfg.WantsLogout() {
			a.SID = sid
		}
	}
	if err := p.storage.saveAuthRequest(ctx, a); err != nil {
		p.showError(w, r, http.StatusServiceUnavailable, pageUnavailable, err)
		return
	}
	target, err := op.BuildAuthResponseCallbackURL(ctx, a, p.op)
	if err != nil {
		p.redirectError(w, r, a, err, afterForm)
		return
	}
	p.storage.issued(metrics.TokenCode)
	p.storage.audit(ctx, "oidc_code_issued", a.UserID, map[string]string{
		"client_id": a.ClientID, "acr": a.ACR, "sso": boolString(!afterForm)})
	p.sendTo(w, r, target, afterForm)
}

// redirectError answers an authorization error to the client at its
// (already verified) redirect_uri; an error that op marks as not to be
// redirected becomes an error page.
func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, req op.ErrAuthRequest, err error, afterForm bool) {
	e := oidc.DefaultToServerError(err, err.Error())
	if e.IsRedirectDisabled() || req.GetRedirectURI() == "" {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, err)
		return
	}
	if e.ErrorType == oidc.ServerError {
		p.log.ErrorContext(r.Context(), "oidc authorization failed", "error", err)
		// The client learns only that the server failed.
		e = oidc.ErrServerError().WithDescription("the identity provider could not answer the request")
	} else {
		p.log.InfoContext(r.Context(), "oidc authorization refused", "error", e.ErrorType, "description", e.Description)
	}
	e.State = req.GetState()
	mode := oidc.ResponseMode("")
	if m, ok := req.(interface{ GetResponseMode() oidc.ResponseMode }); ok {
		mode = m.GetResponseMode()
	}
	responseType := req.GetResponseType()
	if mode == "" && responseType != oidc.ResponseTypeCode && responseType != "" {
		// Errors of implicit-style requests belong in the fragment.
		mode = oidc.ResponseModeFragment
	}
	target, uerr := op.AuthResponseURL(req.GetRedirectURI(), responseType, mode, e, p.op.Encoder())
	if uerr != nil {
		p.showError(w, r, http.StatusBadRequest, pageBadRequest, uerr)
		return
	}
	p.sendTo(w, r, target, afterForm)
}

func (p *Provider) sendTo(w http.ResponseWriter, r *http.Request, target string, afterForm bool) {
	if afterForm {
		p.app.RedirectOut(w, r, target)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

func clientName(c *client) string {
	if c.cfg.Name != "" {
		return c.cfg.Name
	}
	return c.cfg.ID
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
