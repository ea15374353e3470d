package samlprovider

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/store"
)

const (
	// PathSLOContinue picks up a LogoutRequest received by HTTP-POST.
	PathSLOContinue     = "/saml/slo/continue"
	recordPendingLogout = "saml_pending_logout"
	// recordIssued remembers, per SP and SessionIndex, whom an assertion
	// named, so a LogoutRequest can only end a session that SP was given.
	recordIssued = "saml_issued"
)

// issuedSession is what an SP was told in one assertion.
type issuedSession struct {
	User   string `json:"user"`
	NameID string `json:"name_id"`
}

func issuedKey(spEntityID, sessionIndex string) string {
	sum := sha256.Sum256([]byte(spEntityID + "\x00" + sessionIndex))
	return hex.EncodeToString(sum[:])
}

// rememberIssued records the SessionIndex and NameID of an assertion for
// as long as the IdP session can last.
func (p *Provider) rememberIssued(ctx context.Context, spEntityID string, s *saml.Session, userID string) error {
	raw, err := json.Marshal(issuedSession{User: userID, NameID: s.NameID})
	if err != nil {
		return err
	}
	return p.store.PutRecord(ctx, recordIssued, issuedKey(spEntityID, s.Index), raw, p.now().Add(p.sessionLifetime))
}

// logoutRequest is a checked LogoutRequest.
type logoutRequest struct {
	sp         *ServiceProvider
	req        saml.LogoutRequest
	xml        []byte // as verified
	relayState string
	binding    string
}

type pendingLogout struct {
	SP         string `json:"sp"`
	Request    []byte `json:"request"`
	RelayState string `json:"relay_state,omitempty"`
	Binding    string `json:"binding"`
}

// handleSLO receives an SP-initiated LogoutRequest (HTTP-Redirect or
// HTTP-POST). As in handleSSO, a POST carries no session cookie, so it is
// checked, parked and continued with a GET.
func (p *Provider) handleSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if isLogoutResponse(w, r, p.cfg.MaxRequestBytes) {
		p.handleLogoutResponse(w, r)
		return
	}
	msg, err := p.readMessage(w, r, "SAMLRequest")
	if err != nil {
		p.refuseAs(w, r, "", err, "logout")
		return
	}
	lr, err := p.checkLogoutRequest(msg)
	if err != nil {
		p.refuseAs(w, r, issuerOf(msg), err, "logout")
		return
	}
	if err := p.remember(ctx, "logout", lr.sp.Entity.EntityID, lr.req.ID); err != nil {
		p.refuseAs(w, r, lr.sp.Entity.EntityID, err, "logout")
		return
	}
	if r.Method == http.MethodPost {
		raw, err := json.Marshal(pendingLogout{SP: lr.sp.Entity.EntityID, Request: lr.xml, RelayState: lr.relayState, Binding: lr.binding})
		id := randomID()
		if err == nil {
			err = p.store.PutRecord(ctx, recordPendingLogout, id, raw, p.now().Add(p.replayWindow()))
		}
		if err != nil {
			p.serverError(w, r, err)
			return
		}
		http.Redirect(w, r, PathSLOContinue+"?id="+url.QueryEscape(id), http.StatusSeeOther)
		return
	}
	p.logout(w, r, lr)
}

func (p *Provider) handleSLOContinue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	var raw []byte
	err := errPendingGone
	if id != "" && len(id) <= 64 {
		raw, err = p.store.TakeRecord(ctx, recordPendingLogout, id, p.now())
		if errors.Is(err, store.ErrNotFound) {
			err = errPendingGone
		}
	}
	var pl pendingLogout
	if err == nil {
		err = json.Unmarshal(raw, &pl)
	}
	if errors.Is(err, errPendingGone) {
		p.showError(w, r, http.StatusBadRequest, "logout")
		return
	}
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	sp, ok := p.registry.Lookup(pl.SP)
	if !ok {
		p.refuseAs(w, r, pl.SP, errUnknownSP, "logout")
		return
	}
	lr := &logoutRequest{sp: sp, xml: pl.Request, relayState: pl.RelayState, binding: pl.Binding}
	if err := xml.Unmarshal(pl.Request, &lr.req); err != nil {
		p.serverError(w, r, err)
		return
	}
	p.logout(w, r, lr)
}

// checkLogoutRequest checks sender, signature (always required: SAML
// profiles 4.4.4.1), addressing and age.
func (p *Provider) checkLogoutRequest(msg *message) (*logoutRequest, error) {
	v, err := p.verifyMessage(msg, "LogoutRequest", true)
	if err != nil {
		return nil, err
	}
	lr := &logoutRequest{sp: v.sp, xml: v.xml, relayState: msg.relayState, binding: msg.binding}
	if err := xml.Unmarshal(v.xml, &lr.req); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	req := &lr.req
	switch {
	case req.Version != "2.0":
		return nil, fmt.Errorf("%w: version %q", errBadRequest, req.Version)
	case req.ID == "" || len(req.ID) > maxIDLength:
		return nil, fmt.Errorf("%w: ID", errBadRequest)
	case req.Destination != p.sloURL:
		return nil, fmt.Errorf("%w: %q", errDestination, req.Destination)
	case req.NameID == nil:
		return nil, fmt.Errorf("%w: no NameID", errBadRequest)
	case req.NotOnOrAfter != nil && !p.now().Before(req.NotOnOrAfter.Add(p.cfg.ClockSkew)):
		return nil, fmt.Errorf("%w: NotOnOrAfter passed", errExpired)
	}
	if err := p.checkIssueInstant(req.IssueInstant); err != nil {
		return nil, err
	}
	return lr, nil
}

// logout ends the browser's session if it belongs to the user the request
// names, and answers the SP.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request, lr *logoutRequest) {
	ctx := r.Context()
	if f := lr.req.NameID.Format; f == "" || f == nameIDFormatUnspecified {
		// An unspecified NameID names nobody in particular: refused rather
		// than read as "whoever is signed in here".
		p.log.WarnContext(ctx, "LogoutRequest with an unspecified NameID format refused", "request_id", idp.RequestID(ctx),
			"sp", lr.sp.Entity.EntityID)
		p.sendLogoutResponse(w, r, lr, statusOf(saml.StatusRequester, saml.StatusRequestDenied))
		return
	}
	res, err := p.app.CurrentLogin(ctx, idp.AuthRequest{})
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	matches := res == nil
	if res != nil {
		matches, err = p.sessionMatches(ctx, lr, &res.User)
		if err != nil {
			p.serverError(w, r, err)
			return
		}
	}
	if !matches {
		p.log.WarnContext(ctx, "LogoutRequest names another user than the session's", "request_id", idp.RequestID(ctx),
			"sp", lr.sp.Entity.EntityID)
		p.sendLogoutResponse(w, r, lr, statusOf(saml.StatusRequester, saml.StatusUnknownPrincipal))
		return
	}
	if res == nil {
		// Nobody is signed in: nothing to tell anyone (a session half-way
		// through a login still ends).
		if err := p.app.EndSession(ctx); err != nil {
			p.serverError(w, r, err)
			return
		}
		p.app.Audit(ctx, "saml_logout", "", map[string]string{"sp": lr.sp.Entity.EntityID})
		p.sendLogoutResponse(w, r, lr, statusOf(saml.StatusSuccess, ""))
		return
	}
	p.app.Audit(ctx, "saml_logout", res.User.ID, map[string]string{"sp": lr.sp.Entity.EntityID})
	// The other services are told first; PathSLOFinish answers this SP.
	finish, err := json.Marshal(pendingLogout{SP: lr.sp.Entity.EntityID, Request: lr.xml, RelayState: lr.relayState, Binding: lr.binding})
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	target, err := p.app.Logout(ctx, idp.LogoutOptions{Via: "saml",
		Initiator: &idp.Participant{Protocol: idp.ProtocolSAML, ID: lr.sp.Entity.EntityID},
		Finish:    PathSLOFinish, FinishData: finish})
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// isLogoutResponse says whether a message at the SLO endpoint is an SP's
// answer (SAMLResponse) rather than a request.
func isLogoutResponse(w http.ResponseWriter, r *http.Request, maxEncoded int) bool {
	if r.Method == http.MethodGet {
		return r.URL.Query().Has("SAMLResponse")
	}
	// The same bound as readMessage's, which reads the parsed form again.
	r.Body = http.MaxBytesReader(w, r.Body, int64(maxEncoded+2*maxRelayState+1024))
	if err := r.ParseForm(); err != nil {
		return false
	}
	return r.PostForm.Has("SAMLResponse")
}

// sessionMatches says whether the request names this browser's session as
// the SP knows it. With a SessionIndex, it must be one issued to this SP
// for this user under this NameID. Without one, a persistent or email
// NameID must be the session user's; a transient one, which only a
// SessionIndex ties to a session, matches nothing.
func (p *Provider) sessionMatches(ctx context.Context, lr *logoutRequest, u *idp.SessionUser) (bool, error) {
	n := lr.req.NameID
	if si := lr.req.SessionIndex; si != nil && si.Value != "" {
		raw, err := p.store.GetRecord(ctx, recordIssued, issuedKey(lr.sp.Entity.EntityID, si.Value), p.now())
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		var is issuedSession
		if err := json.Unmarshal(raw, &is); err != nil {
			return false, err
		}
		return is.User == u.ID && is.NameID == n.Value, nil
	}
	switch n.Format {
	case NameIDFormatPersistent:
		return n.Value == p.persistentID(lr.sp.Entity.EntityID, u.ID), nil
	case NameIDFormatEmail:
		return u.Mail != "" && strings.EqualFold(n.Value, u.Mail), nil
	}
	return false, nil
}

// sloEndpoint picks the SP's SLO endpoint for the answer: the binding the
// request came by if the SP has it, else any it has.
func sloEndpoint(sp *ServiceProvider, binding string) *saml.Endpoint {
	for i := range sp.SingleLogout {
		if sp.SingleLogout[i].Binding == binding {
			return &sp.SingleLogout[i]
		}
	}
	if len(sp.SingleLogout) > 0 {
		return &sp.SingleLogout[0]
	}
	return nil
}

// sendLogoutResponse answers the SP with a signed LogoutResponse; an SP
// without an SLO endpoint leaves the user on our logged-out page.
func (p *Provider) sendLogoutResponse(w http.ResponseWriter, r *http.Request, lr *logoutRequest, status saml.Status) {
	ep := sloEndpoint(lr.sp, lr.binding)
	if ep == nil {
		if status.StatusCode.Value == saml.StatusSuccess {
			p.app.RenderPage(w, r, http.StatusOK, "logged_out", nil)
		} else {
			p.showError(w, r, http.StatusBadRequest, "logout")
		}
		return
	}
	dest := ep.Location
	if ep.ResponseLocation != "" {
		dest = ep.ResponseLocation
	}
	resp := &saml.LogoutResponse{
		ID:           newID(),
		InResponseTo: lr.req.ID,
		Version:      "2.0",
		IssueInstant: samlTime(p.now()),
		Destination:  dest,
		Issuer:       &saml.Issuer{Format: issuerFormatSAML, Value: p.entityID},
		Status:       status,
	}
	if ep.Binding == saml.HTTPRedirectBinding {
		target, err := p.redirectMessage(dest, "SAMLResponse", resp.Element(), lr.relayState)
		if err != nil {
			p.serverError(w, r, err)
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	xmlBytes, err := signer{p.keys}.envelopedXML(resp.Element, func(sig *etree.Element) { resp.Signature = sig })
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	p.postTo(w, r, dest, xmlBytes, lr.relayState, lr.sp.displayName(), "saml.logout_post_title")
}

// redirectMessage encodes a message for the HTTP-Redirect binding (DEFLATE,
// base64, URL) and signs the query (SAML bindings 3.4.4.1).
func (p *Provider) redirectMessage(location, param string, el *etree.Element, relayState string) (string, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	raw, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	compressed, err := deflate(raw)
	if err != nil {
		return "", err
	}
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(compressed))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	q += "&SigAlg=" + url.QueryEscape(signatureMethod)
	sig, err := signer{p.keys}.signQuery(q)
	if err != nil {
		return "", err
	}
	q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	sep := "?"
	if strings.Contains(location, "?") {
		sep = "&"
	}
	return location + sep + q, nil
}
