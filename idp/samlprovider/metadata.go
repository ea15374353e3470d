package samlprovider

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/config"
)

const (
	// metadataCacheDuration tells SPs how often to look for a new copy,
	// which matters during a key rollover.
	metadataCacheDuration = time.Hour

	shibmdNamespace = "urn:mace:shibboleth:metadata:1.0"
	mduiNamespace   = "urn:oasis:names:tc:SAML:metadata:ui"
	remdNamespace   = "http://refeds.org/metadata"
	// sirtfiContactType marks the REFEDS SIRTFI security contact.
	sirtfiContactType = "http://refeds.org/metadata/contactType/security"
)

// metadataValidFor is the validUntil of the served document from now; 0
// means none. Signed copies always carry one.
func (p *Provider) metadataValidFor() time.Duration {
	if p.cfg.MetadataSigning.Enabled {
		return p.cfg.MetadataSigning.ValidFor
	}
	return p.cfg.Metadata.ValidFor
}

// Metadata describes the IdP: its entity ID, every published signing
// certificate (two during a rollover), the SSO and SLO endpoints for both
// bindings and the NameID formats it issues.
func (p *Provider) Metadata() *saml.EntityDescriptor {
	var keys []saml.KeyDescriptor
	for _, c := range p.keys.Published {
		keys = append(keys, saml.KeyDescriptor{
			Use: "signing",
			KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
				X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(c.Raw)}},
			}},
		})
	}
	if p.encryptionCert != nil {
		keys = append(keys, saml.KeyDescriptor{
			Use: "encryption",
			KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
				X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(p.encryptionCert.Raw)}},
			}},
		})
	}
	var validUntil time.Time
	if d := p.metadataValidFor(); d > 0 {
		validUntil = samlTime(p.now().Add(d))
	}
	var wantSigned *bool
	if p.cfg.Metadata.WantAuthnRequestsSigned {
		wantSigned = &p.cfg.Metadata.WantAuthnRequestsSigned
	}
	return &saml.EntityDescriptor{
		EntityID:      p.entityID,
		ValidUntil:    validUntil,
		CacheDuration: metadataCacheDuration,
		IDPSSODescriptors: []saml.IDPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{
				RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: samlProtocol,
					KeyDescriptors:             keys,
				},
				SingleLogoutServices: []saml.Endpoint{
					{Binding: saml.HTTPRedirectBinding, Location: p.sloURL},
					{Binding: saml.HTTPPostBinding, Location: p.sloURL},
				},
				NameIDFormats: []saml.NameIDFormat{NameIDFormatPersistent, NameIDFormatTransient, NameIDFormatEmail},
			},
			WantAuthnRequestsSigned: wantSigned,
			SingleSignOnServices: []saml.Endpoint{
				{Binding: saml.HTTPRedirectBinding, Location: p.ssoURL},
				{Binding: saml.HTTPPostBinding, Location: p.ssoURL},
			},
		}},
	}
}

// MetadataXML is the metadata document: Metadata with the extensions
// crewjam's types do not carry (shibmd:Scope, mdui:UIInfo, errorURL, the
// organisation and contacts), signed when saml.metadata_signing says so.
func (p *Provider) MetadataXML() ([]byte, error) {
	raw, err := xml.Marshal(p.Metadata())
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, err
	}
	root := doc.Root()
	role := doc.FindElement("./EntityDescriptor/IDPSSODescriptor")
	if root == nil || role == nil {
		return nil, fmt.Errorf("saml: metadata has no IDPSSODescriptor")
	}
	if p.metadataValidFor() == 0 {
		// crewjam writes a zero time; no validUntil at all is meant.
		root.RemoveAttr("validUntil")
	}
	m := p.cfg.Metadata
	if m.ErrorURL != "" {
		role.CreateAttr("errorURL", m.ErrorURL)
	}
	if ext := p.roleExtensions(); ext != nil {
		role.InsertChildAt(0, ext)
	}
	p.addOrganization(root)
	if p.cfg.MetadataSigning.Enabled {
		root.CreateAttr("ID", newID())
		sig, err := signer{p.keys}.signatureFor(root)
		if err != nil {
			return nil, fmt.Errorf("saml: signing the metadata: %w", err)
		}
		root.InsertChildAt(0, sig) // the schema's place, before everything
	} else {
		doc.Indent(2)
	}
	doc.WriteSettings.CanonicalEndTags = false
	out, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

// roleExtensions is the IDPSSODescriptor's Extensions (crewjam writes the
// metadata namespace as the default one, so md elements go unprefixed): the scope and
// the UI texts; nil when there is neither.
func (p *Provider) roleExtensions() *etree.Element {
	m := p.cfg.Metadata
	ext := etree.NewElement("Extensions")
	if p.cfg.Scope != "" {
		scope := ext.CreateElement("shibmd:Scope")
		scope.CreateAttr("xmlns:shibmd", shibmdNamespace)
		scope.CreateAttr("regexp", "false")
		scope.SetText(p.cfg.Scope)
	}
	ui := etree.NewElement("mdui:UIInfo")
	ui.CreateAttr("xmlns:mdui", mduiNamespace)
	// The schema's order: DisplayName, Description, Logo, InformationURL,
	// PrivacyStatementURL.
	localized(ui, "mdui:DisplayName", m.DisplayName)
	localized(ui, "mdui:Description", m.Description)
	if m.Logo.URL != "" {
		logo := ui.CreateElement("mdui:Logo")
		logo.CreateAttr("height", strconv.Itoa(m.Logo.Height))
		logo.CreateAttr("width", strconv.Itoa(m.Logo.Width))
		logo.SetText(m.Logo.URL)
	}
	localized(ui, "mdui:InformationURL", m.InformationURL)
	localized(ui, "mdui:PrivacyStatementURL", m.PrivacyStatementURL)
	if len(ui.ChildElements()) > 0 {
		ext.AddChild(ui)
	}
	if len(ext.ChildElements()) == 0 {
		return nil
	}
	return ext
}

// localized adds one element per language that has a text, ja first.
func localized(parent *etree.Element, tag string, l config.Localized) {
	for _, v := range []struct{ lang, text string }{{"ja", l.JA}, {"en", l.EN}} {
		if v.text == "" {
			continue
		}
		el := parent.CreateElement(tag)
		el.CreateAttr("xml:lang", v.lang)
		el.SetText(v.text)
	}
}

// addOrganization appends md:Organization and the md:ContactPerson
// entries after the role descriptor, where the schema wants them.
func (p *Provider) addOrganization(root *etree.Element) {
	m := p.cfg.Metadata
	if org := m.Organization; org.Name != (config.Localized{}) {
		el := root.CreateElement("Organization")
		localized(el, "OrganizationName", org.Name)
		localized(el, "OrganizationDisplayName", org.DisplayName)
		localized(el, "OrganizationURL", org.URL)
	}
	for _, c := range m.Contacts {
		el := root.CreateElement("ContactPerson")
		if c.Type == config.ContactSecurity {
			el.CreateAttr("contactType", "other")
			el.CreateAttr("xmlns:remd", remdNamespace)
			el.CreateAttr("remd:contactType", sirtfiContactType)
		} else {
			el.CreateAttr("contactType", c.Type)
		}
		if c.Name != "" {
			el.CreateElement("GivenName").SetText(c.Name)
		}
		el.CreateElement("EmailAddress").SetText("mailto:" + c.Email)
	}
}

func (p *Provider) handleMetadata(w http.ResponseWriter, r *http.Request) {
	raw, err := p.MetadataXML()
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(metadataCacheDuration.Seconds())))
	_, _ = w.Write(raw)
}
