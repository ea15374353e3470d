package samlprovider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/store"
)

// Front-channel single logout: the IdP's logout page loads PathSLOSend in a
// frame for each SP that got an assertion in the ended session; it sends
// the SP a signed LogoutRequest, and the SP's LogoutResponse comes back to
// PathSLO in the same frame, which records the result for the page.

const (
	// PathSLOSend sends one SP its LogoutRequest (in a frame of the
	// logout page).
	PathSLOSend = "/saml/slo/send"
	// PathSLOFinish answers the SP that asked for the logout once the
	// other services were told.
	PathSLOFinish = "/saml/slo/finish"
	// recordLogoutSent ties a LogoutRequest we sent to its logout.
	recordLogoutSent = "saml_logout_sent"
	// statusPartialLogout: not every session could be ended (SAML core
	// 3.7.3.2).
	statusPartialLogout = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
)

// sentLogout is a LogoutRequest sent to an SP, awaiting its answer.
type sentLogout struct {
	SP   string `json:"sp"`
	Walk string `json:"walk"`
	N    int    `json:"n"`
}

// frameCSP is for the pages shown in a frame of the IdP's own logout page:
// they may be framed by it (and nothing else), and post to the SP.
const frameCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; " +
	"form-action 'self' %s; frame-ancestors 'self'; base-uri 'none'"

// logoutNotifier tells SAML SPs of a logout (idp.LogoutNotifier).
type logoutNotifier struct{ p *Provider }

// LogoutChannel: an SP with an SLO endpoint is told by the front channel.
func (n logoutNotifier) LogoutChannel(part idp.Participant, walkID string, i int) (string, string, []string) {
	sp, ok := n.p.registry.Lookup(part.ID)
	if !ok {
		return idp.ChannelNone, "", nil
	}
	ep := sloEndpoint(sp, saml.HTTPRedirectBinding)
	if ep == nil || part.NameID == "" {
		return idp.ChannelNone, "", nil
	}
	origin, err := originOf(ep.Location)
	if err != nil {
		return idp.ChannelNone, "", nil
	}
	frame := PathSLOSend + "?walk=" + url.QueryEscape(walkID) + "&n=" + strconv.Itoa(i)
	return idp.ChannelFront, frame, []string{origin}
}

// SendLogout: SAML has no back channel here (SOAP binding not offered).
func (logoutNotifier) SendLogout(context.Context, idp.Participant, string, int) error {
	return errors.New("saml: no back-channel logout")
}

// trackParticipant remembers in the browser session that sp got an
// assertion, with what a LogoutRequest to it must name.
func (p *Provider) trackParticipant(ctx context.Context, sp *ServiceProvider, s *saml.Session) {
	p.app.TrackParticipant(ctx, idp.Participant{Protocol: idp.ProtocolSAML, ID: sp.Entity.EntityID,
		Name: sp.displayName(), NameID: s.NameID, NameIDFormat: s.NameIDFormat, SessionIndex: s.Index})
}

// handleSLOSend sends item n of a logout its LogoutRequest: signed, by
// the SP's HTTP-Redirect endpoint if it has one, else by HTTP-POST.
func (p *Provider) handleSLOSend(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	walk, err := p.app.LogoutWalk(ctx, q.Get("walk"))
	n, nerr := strconv.Atoi(q.Get("n"))
	if errors.Is(err, idp.ErrLogoutWalkNotFound) || (err == nil && (nerr != nil || n < 0 || n >= len(walk.Items))) {
		p.frameText(w, http.StatusNotFound, "unknown logout")
		return
	}
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	it := walk.Items[n]
	sp, ok := p.registry.Lookup(it.ID)
	if it.Protocol != idp.ProtocolSAML || it.Channel != idp.ChannelFront || !ok {
		p.frameText(w, http.StatusBadRequest, "not a SAML front-channel logout")
		return
	}
	if it.Result != idp.LogoutPending {
		p.frameText(w, http.StatusOK, it.Result)
		return
	}
	ep := sloEndpoint(sp, saml.HTTPRedirectBinding)
	if ep == nil {
		p.frameText(w, http.StatusBadRequest, "no SLO endpoint")
		return
	}
	now := p.now()
	notAfter := samlTime(now.Add(p.replayWindow()))
	req := &saml.LogoutRequest{
		ID:           newID(),
		Version:      "2.0",
		IssueInstant: samlTime(now),
		NotOnOrAfter: &notAfter,
		Destination:  ep.Location,
		Issuer:       &saml.Issuer{Format: issuerFormatSAML, Value: p.entityID},
		NameID:       &saml.NameID{Format: it.NameIDFormat, Value: it.NameID},
	}
	if it.NameIDFormat != NameIDFormatEmail {
		// As the assertion named the subject.
		req.NameID.NameQualifier = p.entityID
		req.NameID.SPNameQualifier = sp.Entity.EntityID
	}
	if it.SessionIndex != "" {
		req.SessionIndex = &saml.SessionIndex{Value: it.SessionIndex}
	}
	raw, err := json.Marshal(sentLogout{SP: sp.Entity.EntityID, Walk: walk.ID, N: n})
	if err == nil {
		err = p.store.PutRecord(ctx, recordLogoutSent, req.ID, raw, walk.Expires)
	}
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	if ep.Binding == saml.HTTPRedirectBinding {
		target, err := p.redirectMessage(ep.Location, "SAMLRequest", req.Element(), "")
		if err != nil {
			p.serverError(w, r, err)
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	xmlBytes, err := signer{p.keys}.envelopedXML(req.Element, func(sig *etree.Element) { req.Signature = sig })
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	origin, err := originOf(ep.Location)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Security-Policy", fmt.Sprintf(frameCSP, origin))
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	p.app.RenderPage(w, r, http.StatusOK, "saml_post", postForm{
		TitleKey:     "saml.logout_request_title",
		ServiceName:  sp.displayName(),
		Action:       ep.Location,
		Param:        "SAMLRequest",
		SAMLResponse: base64.StdEncoding.EncodeToString(xmlBytes),
	})
}

// handleLogoutResponse takes an SP's answer to a LogoutRequest we sent and
// records the result for the logout page (this runs in its frame).
func (p *Provider) handleLogoutResponse(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	msg, err := p.readMessage(w, r, "SAMLResponse")
	if err != nil {
		p.log.InfoContext(ctx, "unreadable LogoutResponse", "request_id", idp.RequestID(ctx), "error", err)
		p.frameText(w, http.StatusBadRequest, "bad LogoutResponse")
		return
	}
	v, err := p.verifyMessage(msg, "LogoutResponse", true)
	if err != nil {
		p.log.WarnContext(ctx, "LogoutResponse refused", "request_id", idp.RequestID(ctx), "sp", issuerOf(msg), "error", err)
		p.frameText(w, http.StatusBadRequest, "LogoutResponse refused")
		return
	}
	var resp saml.LogoutResponse
	if err := xml.Unmarshal(v.xml, &resp); err != nil || resp.InResponseTo == "" || len(resp.InResponseTo) > maxIDLength {
		p.frameText(w, http.StatusBadRequest, "bad LogoutResponse")
		return
	}
	if resp.Destination != "" && resp.Destination != p.sloURL {
		p.frameText(w, http.StatusBadRequest, "LogoutResponse for another destination")
		return
	}
	raw, err := p.store.TakeRecord(ctx, recordLogoutSent, resp.InResponseTo, p.now())
	if errors.Is(err, store.ErrNotFound) {
		p.frameText(w, http.StatusBadRequest, "LogoutResponse to no request of ours")
		return
	}
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	var sent sentLogout
	if err := json.Unmarshal(raw, &sent); err != nil {
		p.serverError(w, r, err)
		return
	}
	if sent.SP != v.sp.Entity.EntityID {
		p.log.WarnContext(ctx, "LogoutResponse from another SP than asked", "request_id", idp.RequestID(ctx),
			"sp", v.sp.Entity.EntityID, "asked", sent.SP)
		p.frameText(w, http.StatusBadRequest, "LogoutResponse from another SP")
		return
	}
	result := idp.LogoutFailed
	if resp.Status.StatusCode.Value == saml.StatusSuccess {
		result = idp.LogoutOK
	}
	if err := p.app.RecordLogoutResult(ctx, sent.Walk, sent.N, result); err != nil && !errors.Is(err, idp.ErrLogoutWalkNotFound) {
		p.serverError(w, r, err)
		return
	}
	p.frameText(w, http.StatusOK, result)
}

// frameText answers inside a logout frame that nobody sees; the logout
// page shows the result from the record.
func (p *Provider) frameText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'self'")
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}

// handleSLOFinish answers the SP that asked for the logout, once the
// other services were told: Success, with PartialLogout when some could
// not be logged out.
func (p *Provider) handleSLOFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	walk, err := p.app.LogoutWalk(ctx, r.URL.Query().Get("walk"))
	if errors.Is(err, idp.ErrLogoutWalkNotFound) {
		p.showError(w, r, http.StatusBadRequest, "logout")
		return
	}
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	var pl pendingLogout
	if len(walk.FinishData) == 0 || json.Unmarshal(walk.FinishData, &pl) != nil {
		p.showError(w, r, http.StatusBadRequest, "logout")
		return
	}
	sp, ok := p.registry.Lookup(pl.SP)
	if !ok {
		p.refuseAs(w, r, pl.SP, errUnknownSP, "logout")
		return
	}
	lr := &logoutRequest{sp: sp, relayState: pl.RelayState, binding: pl.Binding}
	if err := xml.Unmarshal(pl.Request, &lr.req); err != nil {
		p.serverError(w, r, err)
		return
	}
	status := statusOf(saml.StatusSuccess, "")
	if walk.Partial() {
		status = statusOf(saml.StatusSuccess, statusPartialLogout)
	}
	p.sendLogoutResponse(w, r, lr, status)
}
