package samlprovider

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/idp"
)

// errNoNameID: the NameID format needs a value the user does not have
// (emailAddress without a mail address).
var errNoNameID = errors.New("saml: no value for the NameID format")

const (
	attrNameFormatURI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
	bearer            = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
)

// newID returns a fresh message ID. IDs are xsd:ID values, which must not
// start with a digit.
func newID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "_" + hex.EncodeToString(b)
}

// samlTime is the form of every time the IdP writes: UTC, milliseconds.
func samlTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// persistentID is the persistent NameID of a user at an SP: stable,
// opaque, and different at every SP so SPs cannot correlate users.
func (p *Provider) persistentID(spEntityID, userID string) string {
	mac := hmac.New(sha256.New, p.persistentKey)
	mac.Write([]byte(spEntityID))
	mac.Write([]byte{0})
	mac.Write([]byte(userID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// nameIDValue returns the NameID of the user in the given format.
func (p *Provider) nameIDValue(format, spEntityID string, u *idp.SessionUser) (string, error) {
	switch format {
	case NameIDFormatTransient:
		return newID(), nil
	case NameIDFormatEmail:
		if u.Mail == "" {
			return "", errNoNameID
		}
		return u.Mail, nil
	default:
		return p.persistentID(spEntityID, u.ID), nil
	}
}

// releasedAttributes builds the attributes the SP may receive, in the
// order of its release list, from the directory attributes read at login.
// Attributes without values are left out.
func (p *Provider) releasedAttributes(sp *ServiceProvider, u *idp.SessionUser) []saml.Attribute {
	var out []saml.Attribute
	for _, name := range sp.Config.Attributes {
		def, ok := p.attributes[name]
		if !ok {
			continue
		}
		var values []saml.AttributeValue
		for _, v := range directoryValues(u.Attributes, def.LDAP) {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if def.Scoped && !strings.Contains(v, "@") {
				v += "@" + p.cfg.Scope
			}
			values = append(values, saml.AttributeValue{Type: "xs:string", Value: v})
		}
		if len(values) == 0 {
			continue
		}
		out = append(out, saml.Attribute{
			FriendlyName: def.Name,
			Name:         def.OID,
			NameFormat:   attrNameFormatURI,
			Values:       values,
		})
	}
	return out
}

// directoryValues looks an attribute up as LDAP does, ignoring case in the
// description ("displayName;lang-ja" = "displayname;LANG-JA").
func directoryValues(attrs map[string][]string, name string) []string {
	if v, ok := attrs[name]; ok {
		return v
	}
	for k, v := range attrs {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// sessionFor turns the login core's result into the crewjam session for
// one SP: its NameID and the attributes released to it.
func (p *Provider) sessionFor(a *authnRequest, res *idp.AuthResult) (*saml.Session, error) {
	u := &res.User
	nameID, err := p.nameIDValue(a.nameIDFormat, a.sp.Entity.EntityID, u)
	if err != nil {
		return nil, err
	}
	return &saml.Session{
		ID:               newID(),
		CreateTime:       samlTime(res.AuthTime),
		Index:            newID(),
		NameID:           nameID,
		NameIDFormat:     a.nameIDFormat,
		UserName:         u.ID,
		UserEmail:        u.Mail,
		UserCommonName:   u.DisplayName,
		Groups:           append([]string(nil), u.Groups...),
		CustomAttributes: p.releasedAttributes(a.sp, u),
	}, nil
}

// assertionMaker is the IdP's saml.AssertionMaker for one response: it
// knows how the user authenticated, which the crewjam session does not.
type assertionMaker struct {
	p        *Provider
	classRef string
}

// MakeAssertion builds the assertion for the session and request: the
// NameID and attributes of the session, a bearer confirmation for the ACS,
// the SP as the only audience, and the authentication context.
func (m assertionMaker) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	now := samlTime(req.Now)
	notOnOrAfter := now.Add(m.p.cfg.AssertionLifetime)
	spEntityID := req.ServiceProviderMetadata.EntityID
	nameID := &saml.NameID{Format: session.NameIDFormat, Value: session.NameID}
	if session.NameIDFormat != NameIDFormatEmail {
		nameID.NameQualifier = m.p.entityID
		nameID.SPNameQualifier = spEntityID
	}
	a := &saml.Assertion{
		ID:           newID(),
		IssueInstant: now,
		Version:      "2.0",
		Issuer:       saml.Issuer{Format: issuerFormatSAML, Value: m.p.entityID},
		Subject: &saml.Subject{
			NameID: nameID,
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: bearer,
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: req.Request.ID,
					NotOnOrAfter: notOnOrAfter,
					Recipient:    req.ACSEndpoint.Location,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore:            now,
			NotOnOrAfter:         notOnOrAfter,
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: spEntityID}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: session.CreateTime,
			SessionIndex: session.Index,
			AuthnContext: saml.AuthnContext{
				AuthnContextClassRef: &saml.AuthnContextClassRef{Value: m.classRef},
			},
		}},
	}
	if len(session.CustomAttributes) > 0 {
		a.AttributeStatements = []saml.AttributeStatement{{Attributes: session.CustomAttributes}}
	}
	req.Assertion = a
	return nil
}
