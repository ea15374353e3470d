package samlprovider

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
)

const (
	// metadataValidity is the validUntil of the published metadata: an SP
	// that cached it must fetch it again within this time.
	metadataValidity = 7 * 24 * time.Hour
	// metadataCacheDuration tells SPs how often to look for a new copy,
	// which matters during a key rollover.
	metadataCacheDuration = time.Hour

	shibmdNamespace = "urn:mace:shibboleth:metadata:1.0"
)

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
	return &saml.EntityDescriptor{
		EntityID:      p.entityID,
		ValidUntil:    samlTime(p.now().Add(metadataValidity)),
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
			SingleSignOnServices: []saml.Endpoint{
				{Binding: saml.HTTPRedirectBinding, Location: p.ssoURL},
				{Binding: saml.HTTPPostBinding, Location: p.ssoURL},
			},
		}},
	}
}

// MetadataXML is the metadata document, with the shibmd:Scope extension
// when saml.scope is set (SPs check scoped attributes against it).
func (p *Provider) MetadataXML() ([]byte, error) {
	raw, err := xml.MarshalIndent(p.Metadata(), "", "  ")
	if err != nil {
		return nil, err
	}
	if p.cfg.Scope == "" {
		return raw, nil
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, err
	}
	role := doc.FindElement("./EntityDescriptor/IDPSSODescriptor")
	if role == nil {
		return nil, fmt.Errorf("saml: metadata has no IDPSSODescriptor")
	}
	ext := etree.NewElement("Extensions")
	scope := ext.CreateElement("shibmd:Scope")
	scope.CreateAttr("xmlns:shibmd", shibmdNamespace)
	scope.CreateAttr("regexp", "false")
	scope.SetText(p.cfg.Scope)
	role.InsertChildAt(0, ext)
	doc.Indent(2)
	return doc.WriteToBytes()
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
