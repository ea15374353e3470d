package samlprovider

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/config"
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

// subjectIDValue is a scoped subject identifier: an HMAC of its kind and
// parts under the persistent NameID key (the kind keeps the identifiers of
// different kinds apart).
func (p *Provider) subjectIDValue(kind string, parts ...string) string {
	mac := hmac.New(sha256.New, p.persistentKey)
	mac.Write([]byte(kind))
	for _, s := range parts {
		mac.Write([]byte{0})
		mac.Write([]byte(s))
	}
	// Base32 keeps to the characters the OASIS profile allows
	// ([0-9A-Za-z=-]) and compares the same in any case.
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(mac.Sum(nil)[:20]) + "@" + p.cfg.Scope
}

// SubjectID is the user's OASIS subject-id: the same at every SP.
func (p *Provider) SubjectID(userID string) string {
	return p.subjectIDValue(config.ComputedSubjectID, userID)
}

// PairwiseID is the user's OASIS pairwise-id at one SP.
func (p *Provider) PairwiseID(spEntityID, userID string) string {
	return p.subjectIDValue(config.ComputedPairwiseID, spEntityID, userID)
}

// computedValues makes the value of a computed attribute.
func (p *Provider) computedValues(def config.SAMLAttribute, spEntityID string, u *idp.SessionUser) []saml.AttributeValue {
	switch def.Computed {
	case config.ComputedSubjectID:
		return []saml.AttributeValue{{Type: "xs:string", Value: p.SubjectID(u.ID)}}
	case config.ComputedPairwiseID:
		return []saml.AttributeValue{{Type: "xs:string", Value: p.PairwiseID(spEntityID, u.ID)}}
	case config.ComputedTargetedID:
		// The persistent NameID itself, as a NameID element (the form
		// eduPerson 201602 asks for).
		return []saml.AttributeValue{{NameID: &saml.NameID{
			Format:          NameIDFormatPersistent,
			NameQualifier:   p.entityID,
			SPNameQualifier: spEntityID,
			Value:           p.persistentID(spEntityID, u.ID),
		}}}
	}
	return nil
}

// releasedAttributes builds the attributes the SP may receive (ReleaseFor),
// in the order of saml.attributes, from the directory attributes read at
// login and the computed identifiers. Attributes without values are left
// out.
// When consent is given, only the attributes it releases are built.
func (p *Provider) releasedAttributes(sp *ServiceProvider, u *idp.SessionUser, consent *idp.ConsentResult) []saml.Attribute {
	var out []saml.Attribute
	for _, name := range p.ReleaseFor(sp).All() {
		if consent != nil && !consent.Releases(name) {
			continue
		}
		def, ok := p.attributes[name]
		if !ok {
			continue
		}
		var values []saml.AttributeValue
		if def.Computed != "" {
			values = p.computedValues(def, sp.Entity.EntityID, u)
		}
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
	if name == "" {
		return nil
	}
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
func (p *Provider) sessionFor(a *authnRequest, res *idp.AuthResult, consent *idp.ConsentResult) (*saml.Session, error) {
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
		CustomAttributes: p.releasedAttributes(a.sp, u, consent),
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
