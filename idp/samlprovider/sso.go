package samlprovider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/store"
)

const (
	// recordPending holds an AuthnRequest while the browser works through
	// the login (or bounces off a POST, see handleSSO).
	recordPending = "saml_pending"
	// PathContinue picks up a request received with the HTTP-POST binding.
	PathContinue = "/saml/sso/continue"
	// PathRefused shows why a request was refused.
	PathRefused = "/saml/refused"
)

// pendingAuthn is a checked AuthnRequest waiting for the browser.
type pendingAuthn struct {
	SP         string `json:"sp"`
	Request    []byte `json:"request"` // the verified XML
	RelayState string `json:"relay_state,omitempty"`
	TxID       string `json:"tx_id,omitempty"` // set once a login transaction runs
	// Result is the finished login while the consent page is open.
	Result *idp.AuthResult `json:"result,omitempty"`
}

func randomID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// handleSSO receives an AuthnRequest.
//
// A request over HTTP-POST arrives as a cross-site POST, which carries no
// SameSite=Lax session cookie. Touching the session then would start a new
// one and overwrite the user's cookie, losing single sign-on. So a POST is
// fully checked (and its ID spent) here, parked in the store, and the
// browser is sent to PathContinue with a GET that carries the cookie.
func (p *Provider) handleSSO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	msg, err := p.readMessage(w, r, "SAMLRequest")
	if err != nil {
		p.refuse(w, r, "", err)
		return
	}
	a, err := p.checkAuthnRequest(msg)
	if err != nil {
		p.refuse(w, r, issuerOf(msg), err)
		return
	}
	if err := p.remember(ctx, "authn", a.sp.Entity.EntityID, a.req.ID); err != nil {
		p.refuse(w, r, a.sp.Entity.EntityID, err)
		return
	}
	if r.Method == http.MethodPost {
		id := randomID()
		if err := p.savePending(ctx, id, &pendingAuthn{SP: a.sp.Entity.EntityID, Request: a.xml, RelayState: a.relayState}); err != nil {
			p.serverError(w, r, err)
			return
		}
		http.Redirect(w, r, PathContinue+"?id="+url.QueryEscape(id), http.StatusSeeOther)
		return
	}
	p.serve(w, r, a)
}

// handleContinue resumes a request parked by a POST to handleSSO.
func (p *Provider) handleContinue(w http.ResponseWriter, r *http.Request) {
	pa, err := p.takePending(r.Context(), r.URL.Query().Get("id"))
	if err != nil {
		p.pendingError(w, r, err)
		return
	}
	a, err := p.reparse(pa)
	if err != nil {
		p.refuse(w, r, pa.SP, err)
		return
	}
	p.serve(w, r, a)
}

// reparse reads a parked request again against the SP's current metadata.
func (p *Provider) reparse(pa *pendingAuthn) (*authnRequest, error) {
	sp, ok := p.registry.Lookup(pa.SP)
	if !ok {
		return nil, fmt.Errorf("%w: %q", errUnknownSP, pa.SP)
	}
	return p.parseAuthnRequest(sp, pa.Request, pa.RelayState)
}

// serve answers a checked request: a SAML status when it cannot be
// satisfied, otherwise an assertion once the session provider has one.
func (p *Provider) serve(w http.ResponseWriter, r *http.Request, a *authnRequest) {
	if a.status != "" {
		p.sendStatus(w, r, a, a.status, a.subStatus)
		return
	}
	req := p.crewjamRequest(r, a)
	sessions := &sessionProvider{p: p, a: a}
	session := sessions.GetSession(w, r, req)
	if session == nil {
		return
	}
	p.respond(w, r, a, req, session, sessions.result)
}

// crewjamRequest is the request as crewjam's AssertionMaker sees it.
func (p *Provider) crewjamRequest(r *http.Request, a *authnRequest) *saml.IdpAuthnRequest {
	return &saml.IdpAuthnRequest{
		IDP:                     p.identityProvider(),
		HTTPRequest:             r,
		RelayState:              a.relayState,
		RequestBuffer:           a.xml,
		Request:                 a.req,
		ServiceProviderMetadata: a.sp.Entity,
		SPSSODescriptor:         a.sp.descriptor(),
		ACSEndpoint:             a.acs,
		Now:                     samlTime(p.now()),
	}
}

// authRequest is what the login core is asked for.
func (a *authnRequest) authRequest() idp.AuthRequest {
	return idp.AuthRequest{
		ClientID:   a.sp.Entity.EntityID,
		ClientName: a.sp.displayName(),
		RequireMFA: a.policy.requireMFA(),
		ForceLogin: a.forceAuthn(),
		// The resume handler answers with the form post to the SP (or the
		// consent page): served in the request that finishes the login.
		ReturnInPlace: true,
	}
}

// sessionProvider is the IdP's saml.SessionProvider: the browser's session
// in the login core. Without a session that satisfies the request it
// starts a login transaction (or, for IsPassive, answers NoPassive) and
// returns nil, as the interface requires.
type sessionProvider struct {
	p      *Provider
	a      *authnRequest
	result *idp.AuthResult
	// consent is the user's answer when it is already known (back from
	// the consent page); nil means the consent step is still to be asked.
	consent *idp.ConsentResult
}

func (s *sessionProvider) GetSession(w http.ResponseWriter, r *http.Request, _ *saml.IdpAuthnRequest) *saml.Session {
	p, a, ctx := s.p, s.a, r.Context()
	if !a.forceAuthn() {
		res, err := p.app.CurrentLogin(ctx, a.authRequest())
		if err != nil {
			p.serverError(w, r, err)
			return nil
		}
		if res != nil {
			return s.session(w, r, res)
		}
	}
	if a.isPassive() {
		// IsPassive forbids any page; ForceAuthn with IsPassive can only
		// fail the same way.
		p.sendStatus(w, r, a, saml.StatusResponder, saml.StatusNoPassive)
		return nil
	}
	id := randomID()
	ar := a.authRequest()
	ar.ReturnTo = PathResume + "?id=" + url.QueryEscape(id)
	txID, err := p.app.BeginLogin(ctx, ar)
	if err != nil {
		p.serverError(w, r, err)
		return nil
	}
	pa := &pendingAuthn{SP: a.sp.Entity.EntityID, Request: a.xml, RelayState: a.relayState, TxID: txID}
	if err := p.savePending(ctx, id, pa); err != nil {
		p.serverError(w, r, err)
		return nil
	}
	http.Redirect(w, r, idp.LoginURL(txID), http.StatusSeeOther)
	return nil
}

func (s *sessionProvider) session(w http.ResponseWriter, r *http.Request, res *idp.AuthResult) *saml.Session {
	if s.consent == nil {
		// The consent step comes after the factor step and before
		// anything is issued to the SP.
		c, ok := s.p.askConsent(w, r, s.a, res)
		if !ok {
			return nil
		}
		s.consent = c
	}
	session, err := s.p.sessionFor(s.a, res, s.consent)
	if errors.Is(err, errNoNameID) {
		s.p.log.WarnContext(r.Context(), "no NameID value for the user", "request_id", idp.RequestID(r.Context()),
			"sp", s.a.sp.Entity.EntityID, "format", s.a.nameIDFormat)
		s.p.sendStatus(w, r, s.a, saml.StatusResponder, saml.StatusInvalidNameIDPolicy)
		return nil
	}
	if err == nil {
		err = s.p.rememberIssued(r.Context(), s.a.sp.Entity.EntityID, session, res.User.ID)
	}
	if err == nil {
		s.p.trackParticipant(r.Context(), s.a.sp, session)
	}
	if err != nil {
		s.p.serverError(w, r, err)
		return nil
	}
	s.result = res
	return session
}

// handleResume is where the login core sends the browser once every step
// is done. The assertion is issued only for a finished transaction of this
// browser, and only once.
func (p *Provider) handleResume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	pa, err := p.loadPending(ctx, id)
	if err != nil {
		p.pendingError(w, r, err)
		return
	}
	res, err := p.app.FinishLogin(ctx, pa.TxID)
	switch {
	case errors.Is(err, idp.ErrLoginNotFound), errors.Is(err, idp.ErrLoginIncomplete):
		p.log.InfoContext(ctx, "login not finished", "request_id", idp.RequestID(ctx), "sp", pa.SP, "error", err)
		p.showError(w, r, http.StatusBadRequest, "login")
		return
	case err != nil:
		p.serverError(w, r, err)
		return
	}
	// Of two concurrent resumes of one login only one takes the record.
	if _, err := p.takePending(ctx, id); err != nil {
		p.pendingError(w, r, err)
		return
	}
	a, err := p.reparse(pa)
	if err != nil {
		p.refuse(w, r, pa.SP, err)
		return
	}
	if a.status != "" {
		p.sendStatus(w, r, a, a.status, a.subStatus)
		return
	}
	s := &sessionProvider{p: p, a: a}
	session := s.session(w, r, res)
	if session == nil {
		return
	}
	p.respond(w, r, a, p.crewjamRequest(r, a), session, res)
}

// respond issues the signed (and perhaps encrypted) assertion in a signed
// Response to the ACS.
func (p *Provider) respond(w http.ResponseWriter, r *http.Request, a *authnRequest, req *saml.IdpAuthnRequest, session *saml.Session, res *idp.AuthResult) {
	ctx := r.Context()
	classRef := a.policy.classRef(res.MFA)
	if classRef == "" {
		// The login core was asked for the factor; never claim what was
		// not done.
		p.serverError(w, r, errors.New("saml: login result does not meet the required context"))
		return
	}
	if err := (assertionMaker{p: p, classRef: classRef}).MakeAssertion(req, session); err != nil {
		p.serverError(w, r, err)
		return
	}
	el, err := p.signedAssertion(req, a.sp)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	xmlBytes, err := p.responseXML(a.acs.Location, a.req.ID, statusOf(saml.StatusSuccess, ""), el)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	p.app.Audit(ctx, "saml_sso", res.User.ID, map[string]string{
		"sp": a.sp.Entity.EntityID, "authn_context": classRef, "name_id_format": a.nameIDFormat,
		"attributes": fmt.Sprint(len(session.CustomAttributes)), "encrypted": fmt.Sprint(a.sp.encrypts()),
	})
	p.postTo(w, r, a.acs.Location, xmlBytes, a.relayState, a.sp.displayName(), "saml.post_title")
}

// sendStatus answers a sound request that cannot be satisfied with a
// signed Response carrying the status (no assertion) at its ACS.
func (p *Provider) sendStatus(w http.ResponseWriter, r *http.Request, a *authnRequest, top, second string) {
	ctx := r.Context()
	xmlBytes, err := p.responseXML(a.acs.Location, a.req.ID, statusOf(top, second), nil)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	p.log.InfoContext(ctx, "answering with a SAML status", "request_id", idp.RequestID(ctx),
		"sp", a.sp.Entity.EntityID, "status", second)
	p.app.Audit(ctx, "saml_sso_status", "", map[string]string{"sp": a.sp.Entity.EntityID, "status": second})
	p.postTo(w, r, a.acs.Location, xmlBytes, a.relayState, a.sp.displayName(), "saml.post_title")
}

func (p *Provider) savePending(ctx context.Context, id string, pa *pendingAuthn) error {
	raw, err := json.Marshal(pa)
	if err != nil {
		return err
	}
	return p.store.PutRecord(ctx, recordPending, id, raw, p.now().Add(p.pendingLifetime()))
}

// pendingLifetime matches the login transaction's, so the request lives
// as long as the login it waits for.
func (p *Provider) pendingLifetime() time.Duration { return p.loginTxLifetime }

var errPendingGone = errors.New("saml: no such pending request")

func (p *Provider) loadPending(ctx context.Context, id string) (*pendingAuthn, error) {
	return p.readPending(ctx, id, p.store.GetRecord)
}

func (p *Provider) takePending(ctx context.Context, id string) (*pendingAuthn, error) {
	return p.readPending(ctx, id, p.store.TakeRecord)
}

func (p *Provider) readPending(ctx context.Context, id string, read func(context.Context, string, string, time.Time) ([]byte, error)) (*pendingAuthn, error) {
	if id == "" || len(id) > 64 {
		return nil, errPendingGone
	}
	raw, err := read(ctx, recordPending, id, p.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPendingGone
	}
	if err != nil {
		return nil, err
	}
	var pa pendingAuthn
	if err := json.Unmarshal(raw, &pa); err != nil {
		return nil, fmt.Errorf("saml: pending request: %w", err)
	}
	return &pa, nil
}

func (p *Provider) pendingError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errPendingGone) {
		p.showError(w, r, http.StatusBadRequest, "login")
		return
	}
	p.serverError(w, r, err)
}
