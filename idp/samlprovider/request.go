package samlprovider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"

	"github.com/campusidp/campusidp/store"
)

// Errors of request validation. None of them is ever answered at the ACS:
// the request is not trustworthy enough to send anything there.
var (
	errUnknownSP    = errors.New("saml: request from an unregistered SP")
	errUnknownACS   = errors.New("saml: ACS not in the SP's metadata")
	errUnsigned     = errors.New("saml: SP must sign its requests")
	errReplayed     = errors.New("saml: request ID already used")
	errExpired      = errors.New("saml: request too old or from the future")
	errDestination  = errors.New("saml: request addressed to another endpoint")
	errBadRequest   = errors.New("saml: invalid request")
	errNotSupported = errors.New("saml: unsupported binding")
	errWrongMessage = errors.New("saml: unexpected message type")
)

const (
	// recordSeen remembers the IDs of requests already received.
	recordSeen = "saml_seen"
	// maxIDLength bounds message IDs (they are echoed and hashed).
	maxIDLength      = 256
	assertionNS      = "urn:oasis:names:tc:SAML:2.0:assertion"
	issuerFormatSAML = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
)

// verifiedMessage is a message whose sender and signature are checked.
type verifiedMessage struct {
	sp     *ServiceProvider
	xml    []byte // the signed element only, when signed
	signed bool
}

// verifyMessage identifies the sending SP by the Issuer and checks the
// signature: a signature present must verify with the SP's metadata keys,
// and an SP that signs (or must) cannot send unsigned messages. rootTag is
// "AuthnRequest" or "LogoutRequest".
func (p *Provider) verifyMessage(msg *message, rootTag string, requireSigned bool) (*verifiedMessage, error) {
	if err := xrv.Validate(bytes.NewReader(msg.xml)); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(msg.xml); err != nil || doc.Root() == nil || hasDirective(doc) {
		return nil, fmt.Errorf("%w: not XML, or with a DOCTYPE", errMalformed)
	}
	root := doc.Root()
	if root.Tag != rootTag || root.NamespaceURI() != samlProtocol {
		return nil, fmt.Errorf("%w: %s", errWrongMessage, root.Tag)
	}
	issuer := root.FindElement("./Issuer")
	if issuer == nil || issuer.NamespaceURI() != assertionNS {
		return nil, fmt.Errorf("%w: no Issuer", errUnknownSP)
	}
	if f := issuer.SelectAttrValue("Format", issuerFormatSAML); f != issuerFormatSAML {
		return nil, fmt.Errorf("%w: Issuer format %s", errUnknownSP, f)
	}
	sp, ok := p.registry.Lookup(issuer.Text())
	if !ok {
		return nil, fmt.Errorf("%w: %q", errUnknownSP, issuer.Text())
	}
	v := &verifiedMessage{sp: sp, xml: msg.xml}

	switch {
	case msg.querySigned:
		if err := verifyQuerySignature(msg.sigAlg, msg.signedQuery, msg.signature, sp.SigningCerts); err != nil {
			return nil, err
		}
		v.signed = true
	case msg.binding == saml.HTTPPostBinding:
		el, err := verifyEnveloped(root, sp.SigningCerts)
		switch {
		case errors.Is(err, errNoSignature):
		case err != nil:
			return nil, err
		default:
			d := etree.NewDocument()
			d.SetRoot(el)
			if v.xml, err = d.WriteToBytes(); err != nil {
				return nil, err
			}
			v.signed = true
		}
	}
	if !v.signed && requireSigned {
		return nil, errUnsigned
	}
	return v, nil
}

// authnRequest is a checked AuthnRequest with what the IdP decided from it.
type authnRequest struct {
	sp         *ServiceProvider
	xml        []byte
	req        saml.AuthnRequest
	relayState string
	acs        *saml.IndexedEndpoint
	policy     authnPolicy
	// nameIDFormat is the format the assertion will carry; empty (with
	// status set) when the request asks for one the SP may not have.
	nameIDFormat string
	// status, when set, is the SAML status to answer at the ACS instead of
	// an assertion (the request is fine but cannot be satisfied).
	status, subStatus string
}

func (a *authnRequest) forceAuthn() bool { return a.req.ForceAuthn != nil && *a.req.ForceAuthn }
func (a *authnRequest) isPassive() bool  { return a.req.IsPassive != nil && *a.req.IsPassive }

// checkAuthnRequest runs every check of a received AuthnRequest: the
// sender, the signature, the addressing and the age. It does not consult
// the replay cache.
func (p *Provider) checkAuthnRequest(msg *message) (*authnRequest, error) {
	// Whether the SP must sign is known only once it is identified.
	v, err := p.verifyMessage(msg, "AuthnRequest", false)
	if err != nil {
		return nil, err
	}
	// The metadata's WantAuthnRequestsSigned is a promise to every SP.
	if !v.signed && (v.sp.wantsSignedRequests() || p.cfg.Metadata.WantAuthnRequestsSigned) {
		return nil, errUnsigned
	}
	a, err := p.parseAuthnRequest(v.sp, v.xml, msg.relayState)
	if err != nil {
		return nil, err
	}
	if a.req.Destination != "" || v.signed {
		// A signed request must say where it was sent (SAML bindings
		// 3.4.5.2, 3.5.5.2), so it cannot be redirected elsewhere.
		if a.req.Destination != p.ssoURL {
			return nil, fmt.Errorf("%w: %q", errDestination, a.req.Destination)
		}
	}
	if err := p.checkIssueInstant(a.req.IssueInstant); err != nil {
		return nil, err
	}
	return a, nil
}

func (p *Provider) checkIssueInstant(t time.Time) error {
	now := p.now()
	switch {
	case t.IsZero():
		return fmt.Errorf("%w: no IssueInstant", errBadRequest)
	case t.After(now.Add(p.cfg.ClockSkew)):
		return fmt.Errorf("%w: issued in the future (%s)", errExpired, t.UTC().Format(time.RFC3339))
	case now.Sub(t) > p.cfg.RequestLifetime+p.cfg.ClockSkew:
		return fmt.Errorf("%w: issued at %s", errExpired, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// replayWindow is how long request IDs are remembered: longer than any
// request passes checkIssueInstant, so a replay can never slip through
// after the cache forgot it.
func (p *Provider) replayWindow() time.Duration { return p.cfg.RequestLifetime + 2*p.cfg.ClockSkew }

// remember records a request ID of an SP and refuses one seen before. The
// store adds the record only if none is live under the key, so of two
// simultaneous uses (even on two instances) exactly one gets through.
func (p *Provider) remember(ctx context.Context, kind, spID, reqID string) error {
	sum := sha256.Sum256([]byte(kind + "\x00" + spID + "\x00" + reqID))
	now := p.now()
	err := p.store.AddRecord(ctx, recordSeen, hex.EncodeToString(sum[:]), nil, now.Add(p.replayWindow()), now)
	switch {
	case errors.Is(err, store.ErrExists):
		return errReplayed
	case err != nil:
		return fmt.Errorf("saml: replay cache: %w", err)
	}
	return nil
}

// parseAuthnRequest reads a verified AuthnRequest and decides the ACS, the
// authentication context and the NameID format. It is also run again when
// the login core hands the browser back, against the SP's current metadata.
func (p *Provider) parseAuthnRequest(sp *ServiceProvider, raw []byte, relayState string) (*authnRequest, error) {
	a := &authnRequest{sp: sp, xml: raw, relayState: relayState}
	if err := xml.Unmarshal(raw, &a.req); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	var extra authnRequestExtras
	if err := xml.Unmarshal(raw, &extra); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	switch {
	case a.req.Version != "2.0":
		return nil, fmt.Errorf("%w: version %q", errBadRequest, a.req.Version)
	case a.req.ID == "" || len(a.req.ID) > maxIDLength:
		return nil, fmt.Errorf("%w: ID", errBadRequest)
	case a.req.Issuer == nil || a.req.Issuer.Value != sp.Entity.EntityID:
		return nil, fmt.Errorf("%w: Issuer", errUnknownSP)
	}
	acs, err := selectACS(sp, &a.req)
	if err != nil {
		return nil, err
	}
	a.acs = acs

	// From here on the request is sound and its ACS trusted: what cannot
	// be satisfied is answered there with a SAML status.
	switch {
	case extra.Subject != nil:
		a.status, a.subStatus = saml.StatusResponder, saml.StatusRequestUnsupported
		return a, nil
	}
	policy, ok := decidePolicy(extra.RequestedAuthnContext, sp.Config.RequireMFA)
	if !ok {
		a.status, a.subStatus = saml.StatusResponder, saml.StatusNoAuthnContext
		return a, nil
	}
	a.policy = policy
	format, ok := chooseNameIDFormat(sp, a.req.NameIDPolicy)
	if !ok {
		a.status, a.subStatus = saml.StatusRequester, saml.StatusInvalidNameIDPolicy
		return a, nil
	}
	a.nameIDFormat = format
	return a, nil
}

// authnRequestExtras are parts of an AuthnRequest that saml.AuthnRequest
// reads incompletely (it keeps one AuthnContextClassRef) or not at all.
type authnRequestExtras struct {
	XMLName               xml.Name               `xml:"urn:oasis:names:tc:SAML:2.0:protocol AuthnRequest"`
	RequestedAuthnContext *requestedAuthnContext `xml:"urn:oasis:names:tc:SAML:2.0:protocol RequestedAuthnContext"`
	Subject               *struct{}              `xml:"urn:oasis:names:tc:SAML:2.0:assertion Subject"`
}

type requestedAuthnContext struct {
	Comparison string   `xml:"Comparison,attr"`
	ClassRefs  []string `xml:"urn:oasis:names:tc:SAML:2.0:assertion AuthnContextClassRef"`
	DeclRefs   []string `xml:"urn:oasis:names:tc:SAML:2.0:assertion AuthnContextDeclRef"`
}

// selectACS finds the endpoint the response goes to: the one the request
// names (by URL or index) and the SP's metadata lists for HTTP-POST, or
// the metadata's default when the request names none. A URL that the
// metadata does not list is refused, never used.
func selectACS(sp *ServiceProvider, req *saml.AuthnRequest) (*saml.IndexedEndpoint, error) {
	endpoints := sp.descriptor().AssertionConsumerServices
	if req.ProtocolBinding != "" && req.ProtocolBinding != saml.HTTPPostBinding {
		return nil, fmt.Errorf("%w: response binding %s", errNotSupported, req.ProtocolBinding)
	}
	switch {
	case req.AssertionConsumerServiceIndex != "" && req.AssertionConsumerServiceURL != "":
		return nil, fmt.Errorf("%w: both AssertionConsumerServiceIndex and URL", errBadRequest)
	case req.AssertionConsumerServiceIndex != "":
		idx, err := strconv.Atoi(req.AssertionConsumerServiceIndex)
		if err != nil {
			return nil, fmt.Errorf("%w: AssertionConsumerServiceIndex", errBadRequest)
		}
		for i := range endpoints {
			if endpoints[i].Index == idx {
				return &endpoints[i], nil
			}
		}
		return nil, fmt.Errorf("%w: index %d", errUnknownACS, idx)
	case req.AssertionConsumerServiceURL != "":
		for i := range endpoints {
			if endpoints[i].Location == req.AssertionConsumerServiceURL {
				return &endpoints[i], nil
			}
		}
		return nil, fmt.Errorf("%w: %q", errUnknownACS, req.AssertionConsumerServiceURL)
	}
	for i := range endpoints {
		if endpoints[i].IsDefault != nil && *endpoints[i].IsDefault {
			return &endpoints[i], nil
		}
	}
	for i := range endpoints {
		if endpoints[i].IsDefault == nil {
			return &endpoints[i], nil
		}
	}
	return &endpoints[0], nil
}
