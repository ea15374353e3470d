package samlprovider

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"
	"github.com/prometheus/client_golang/prometheus"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

const recordFederationMetadata = "saml_federation_metadata"

// Namespaces and names of the metadata extensions the release policy reads.
const (
	mdNamespace     = "urn:oasis:names:tc:SAML:2.0:metadata"
	mdrpiNamespace  = "urn:oasis:names:tc:SAML:metadata:rpi"
	mdattrNamespace = "urn:oasis:names:tc:SAML:metadata:attribute"
	samlNamespace   = "urn:oasis:names:tc:SAML:2.0:assertion"

	entityCategoryAttr   = "http://macedir.org/entity-category"
	subjectIDRequirement = "urn:oasis:names:tc:SAML:profiles:subject-id:req"
)

// EntityInfo is what an SP's metadata says for the release policy.
type EntityInfo struct {
	// Categories are the entity categories (http://macedir.org/entity-category).
	Categories []string
	// RegistrationAuthority is mdrpi:RegistrationInfo's registrar, from the
	// entity or the enclosing EntitiesDescriptor.
	RegistrationAuthority string
	// SubjectIDRequirement is subject-id, pairwise-id, any or none; "" when
	// the metadata does not say.
	SubjectIDRequirement string
	// DisplayName is the SP's mdui:DisplayName in Japanese and English.
	DisplayName config.Localized
	// Logo is the SP's mdui:Logo (https only; Japanese, else English, else
	// one without a language), shown on the consent page.
	Logo string
}

// fedState is one federation with its last good aggregate.
type fedState struct {
	cfg       config.SAMLFederation
	signer    *x509.Certificate
	signerErr error

	entities    map[string]*ServiceProvider // the last good aggregate's SPs
	validUntil  time.Time
	lastSuccess time.Time
	next        time.Time
	failures    int    // in a row
	failedTotal uint64 // since start, for the metrics
}

// loadStoredAggregate starts from the copy kept in the store (or the
// backing file), so an unreachable federation server does not lock every
// federation SP out after a restart.
func (r *Registry) loadStoredAggregate(ctx context.Context, f *fedState) {
	now := r.opts.now()
	raw, err := r.storedCopy(ctx, recordFederationMetadata, f.cfg.Name, f.cfg.MetadataFile, now)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.opts.log.WarnContext(ctx, "reading the stored federation metadata failed", "federation", f.cfg.Name, "error", err)
		}
		return
	}
	entities, until, err := r.parseAggregate(raw, f)
	if err != nil {
		r.opts.log.WarnContext(ctx, "the stored federation metadata is no longer valid", "federation", f.cfg.Name, "error", err)
		return
	}
	r.mu.Lock()
	f.entities, f.validUntil = entities, until
	r.mu.Unlock()
}

// RefreshFederation re-reads a federation's aggregate now. On failure the
// last good copy stays in use and the error is returned.
func (r *Registry) RefreshFederation(ctx context.Context, name string) error {
	for _, f := range r.feds {
		if f.cfg.Name == name {
			return r.refreshFederation(ctx, f)
		}
	}
	return fmt.Errorf("saml: no federation %q", name)
}

func (r *Registry) refreshFederation(ctx context.Context, f *fedState) error {
	interval := f.cfg.RefreshOr(r.opts.refresh)
	raw, entities, until, err := r.readAggregate(ctx, f)
	now := r.opts.now()
	r.mu.Lock()
	if err != nil {
		f.failures++
		f.failedTotal++
		f.next = now.Add(min(interval, maxRetryAfterFailure))
		kept, failures := len(f.entities), f.failures
		r.mu.Unlock()
		r.opts.log.ErrorContext(ctx, "federation metadata not loaded", "federation", f.cfg.Name,
			"keeping_last_good_copy_entities", kept, "failures_in_a_row", failures, "error", err)
		return err
	}
	f.entities, f.validUntil = entities, until
	f.failures = 0
	f.lastSuccess = now
	f.next = now.Add(interval)
	r.mu.Unlock()
	r.opts.log.InfoContext(ctx, "federation metadata loaded", "federation", f.cfg.Name, "sps", len(entities),
		"valid_until", until)
	if f.cfg.MetadataURL != "" {
		expires := now.Add(storedMetadataLife)
		if !until.IsZero() {
			expires = until
		}
		r.keepCopy(ctx, recordFederationMetadata, f.cfg.Name, f.cfg.MetadataFile, raw, expires)
	}
	return nil
}

func (r *Registry) readAggregate(ctx context.Context, f *fedState) ([]byte, map[string]*ServiceProvider, time.Time, error) {
	var raw []byte
	var err error
	if f.cfg.MetadataURL != "" {
		raw, err = r.fetch(ctx, f.cfg.MetadataURL)
	} else {
		raw, err = readLimited(f.cfg.MetadataFile, r.opts.maxSize)
	}
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	entities, until, err := r.parseAggregate(raw, f)
	return raw, entities, until, err
}

func (r *Registry) parseAggregate(raw []byte, f *fedState) (map[string]*ServiceProvider, time.Time, error) {
	if f.signerErr != nil {
		return nil, time.Time{}, fmt.Errorf("%w: federation signing certificate: %w", ErrMetadataRefused, f.signerErr)
	}
	r.mu.RLock()
	overrides := r.overrides
	r.mu.RUnlock()
	return parseAggregate(raw, f.cfg, f.signer, overrides, r.opts.now(), r.opts.log.Warn)
}

// parseAggregate verifies a federation's signed EntitiesDescriptor once and
// reads every SP in it. An SP whose own entry is refused (an ACS that is not
// http(s), an expired entity) is left out with a warning; the aggregate
// stands. overrides supply the settings of SPs that have an entry.
func parseAggregate(raw []byte, fed config.SAMLFederation, signer *x509.Certificate, overrides map[string]config.SAMLServiceProvider,
	now time.Time, warn func(string, ...any)) (map[string]*ServiceProvider, time.Time, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMetadataRefused, fmt.Sprintf(format, args...))
	}
	if err := xrv.Validate(bytes.NewReader(raw)); err != nil {
		return nil, time.Time{}, refuse("not well-formed XML: %v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		return nil, time.Time{}, refuse("not XML: %v", err)
	}
	if hasDirective(doc) {
		return nil, time.Time{}, refuse("has a DOCTYPE")
	}
	if doc.Root().Tag != "EntitiesDescriptor" {
		return nil, time.Time{}, refuse("root element is %s, not EntitiesDescriptor", doc.Root().Tag)
	}
	// The schema puts the signature first; goxmldsig looks no further than
	// 1,000 elements for it, so an aggregate signed elsewhere would fail
	// with a puzzling error.
	if first := doc.Root().ChildElements(); len(first) == 0 || first[0].Tag != "Signature" || first[0].NamespaceURI() != dsig.Namespace {
		return nil, time.Time{}, refuse("signature: ds:Signature is not the first child of EntitiesDescriptor")
	}
	verified, err := verifyEnveloped(doc.Root(), []*x509.Certificate{signer})
	if err != nil {
		return nil, time.Time{}, refuse("signature: %v", err)
	}
	doc = nil // only what the signature covers is read from here on

	var until time.Time
	if v := verified.SelectAttrValue("validUntil", ""); v != "" {
		if until, err = time.Parse(time.RFC3339, v); err != nil {
			return nil, time.Time{}, refuse("validUntil %q: %v", v, err)
		}
	}
	switch {
	case until.IsZero() && fed.RequireValidUntil:
		return nil, time.Time{}, refuse("no validUntil")
	case !until.IsZero() && !now.Before(until):
		return nil, time.Time{}, refuse("expired at %s (validUntil)", until.UTC().Format(time.RFC3339))
	case !until.IsZero() && fed.MaxValidity > 0 && until.Sub(now) > fed.MaxValidity:
		return nil, time.Time{}, refuse("validUntil %s is more than %s away", until.UTC().Format(time.RFC3339), fed.MaxValidity)
	}

	// One pass of encoding/xml over the signed element gives crewjam's
	// types for all entities; the extensions are read from the tree the
	// signature check already built.
	vd := etree.NewDocument()
	vd.SetRoot(verified)
	signed, err := vd.WriteToBytes()
	if err != nil {
		return nil, time.Time{}, err
	}
	var eds saml.EntitiesDescriptor
	if err := xml.Unmarshal(signed, &eds); err != nil {
		return nil, time.Time{}, refuse("%v", err)
	}
	signed = nil
	elements := map[string]*etree.Element{}
	authorities := map[string]string{}
	collectEntityElements(verified, "", elements, authorities)

	entities := map[string]*ServiceProvider{}
	var walk func(eds *saml.EntitiesDescriptor)
	walk = func(eds *saml.EntitiesDescriptor) {
		for i := range eds.EntityDescriptors {
			ed := &eds.EntityDescriptors[i]
			if len(ed.SPSSODescriptors) == 0 {
				continue // an IdP or attribute authority
			}
			if _, dup := entities[ed.EntityID]; dup {
				warn("federation metadata lists an SP twice; the first is used", "federation", fed.Name, "sp", ed.EntityID)
				continue
			}
			cfg, ok := overrides[ed.EntityID]
			if !ok {
				cfg = config.SAMLServiceProvider{EntityID: ed.EntityID}
			}
			sp, err := buildSP(ed, cfg, now)
			if err != nil {
				warn("federation SP refused", "federation", fed.Name, "sp", ed.EntityID, "error", err)
				continue
			}
			if el := elements[ed.EntityID]; el != nil {
				sp.Info = readEntityInfo(el, authorities[ed.EntityID])
			}
			sp.Federation = fed.Name
			if sp.ValidUntil.IsZero() || (!until.IsZero() && until.Before(sp.ValidUntil)) {
				sp.ValidUntil = until
			}
			entities[ed.EntityID] = sp
		}
		for i := range eds.EntitiesDescriptors {
			walk(&eds.EntitiesDescriptors[i])
		}
	}
	walk(&eds)
	return entities, until, nil
}

// collectEntityElements maps every EntityDescriptor under el by entityID,
// with the registration authority it inherits from enclosing groups.
func collectEntityElements(el *etree.Element, authority string, out map[string]*etree.Element, authorities map[string]string) {
	if a := registrationAuthority(el); a != "" {
		authority = a
	}
	for _, c := range el.ChildElements() {
		switch c.Tag {
		case "EntityDescriptor":
			id := c.SelectAttrValue("entityID", "")
			if _, dup := out[id]; !dup {
				out[id] = c
				authorities[id] = authority
			}
		case "EntitiesDescriptor":
			collectEntityElements(c, authority, out, authorities)
		}
	}
}

// findEntityElement finds the EntityDescriptor of id at or under root.
func findEntityElement(root *etree.Element, id string) *etree.Element {
	if root.Tag == "EntityDescriptor" {
		if root.SelectAttrValue("entityID", "") == id {
			return root
		}
		return nil
	}
	for _, c := range root.ChildElements() {
		if el := findEntityElement(c, id); el != nil {
			return el
		}
	}
	return nil
}

// inheritedAuthority is the registration authority of the groups around el.
func inheritedAuthority(el *etree.Element) string {
	for p := el.Parent(); p != nil; p = p.Parent() {
		if a := registrationAuthority(p); a != "" {
			return a
		}
	}
	return ""
}

// extensions returns el's md:Extensions child, nil if none.
func extensions(el *etree.Element) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == "Extensions" && c.NamespaceURI() == mdNamespace {
			return c
		}
	}
	return nil
}

func registrationAuthority(el *etree.Element) string {
	ext := extensions(el)
	if ext == nil {
		return ""
	}
	for _, c := range ext.ChildElements() {
		if c.Tag == "RegistrationInfo" && c.NamespaceURI() == mdrpiNamespace {
			return strings.TrimSpace(c.SelectAttrValue("registrationAuthority", ""))
		}
	}
	return ""
}

// readEntityInfo reads the entity attributes of an EntityDescriptor.
func readEntityInfo(el *etree.Element, inherited string) EntityInfo {
	info := EntityInfo{RegistrationAuthority: inherited}
	if a := registrationAuthority(el); a != "" {
		info.RegistrationAuthority = a
	}
	for _, role := range el.ChildElements() {
		if role.Tag != "SPSSODescriptor" {
			continue
		}
		if ext := extensions(role); ext != nil {
			for _, ui := range ext.ChildElements() {
				if ui.Tag != "UIInfo" || ui.NamespaceURI() != mduiNamespace {
					continue
				}
				logos := map[string]string{}
				for _, dn := range ui.ChildElements() {
					if dn.Tag == "Logo" {
						if u := strings.TrimSpace(dn.Text()); strings.HasPrefix(u, "https://") && len(u) <= 2048 {
							lang := dn.SelectAttrValue("xml:lang", "")
							if _, seen := logos[lang]; !seen {
								logos[lang] = u
							}
						}
						continue
					}
					if dn.Tag != "DisplayName" {
						continue
					}
					switch dn.SelectAttrValue("xml:lang", "") {
					case "ja":
						info.DisplayName.JA = strings.TrimSpace(dn.Text())
					case "en":
						info.DisplayName.EN = strings.TrimSpace(dn.Text())
					}
				}
				info.Logo = cmp.Or(logos["ja"], logos["en"], logos[""])
			}
		}
		break
	}
	ext := extensions(el)
	if ext == nil {
		return info
	}
	for _, ea := range ext.ChildElements() {
		if ea.Tag != "EntityAttributes" || ea.NamespaceURI() != mdattrNamespace {
			continue
		}
		for _, attr := range ea.ChildElements() {
			if attr.Tag != "Attribute" || attr.NamespaceURI() != samlNamespace {
				continue
			}
			name := attr.SelectAttrValue("Name", "")
			for _, v := range attr.ChildElements() {
				if v.Tag != "AttributeValue" {
					continue
				}
				value := strings.TrimSpace(v.Text())
				switch name {
				case entityCategoryAttr:
					info.Categories = append(info.Categories, value)
				case subjectIDRequirement:
					info.SubjectIDRequirement = value
				}
			}
		}
	}
	return info
}

// storedCopy returns the last good copy of fetched metadata: from the
// store, else from the backing file when one is configured.
func (r *Registry) storedCopy(ctx context.Context, kind, id, backingFile string, now time.Time) ([]byte, error) {
	raw, err := r.opts.store.GetRecord(ctx, kind, id, now)
	if err == nil || backingFile == "" {
		return raw, err
	}
	if fileRaw, ferr := readLimited(backingFile, r.opts.maxSize); ferr == nil {
		return fileRaw, nil
	} else if !errors.Is(ferr, os.ErrNotExist) {
		r.opts.log.WarnContext(ctx, "reading the metadata backing file failed", "file", backingFile, "error", ferr)
	}
	return nil, err
}

// keepCopy keeps good fetched metadata in the store and, when configured,
// in the backing file (written whole, then renamed, so a crash never
// leaves half a document).
func (r *Registry) keepCopy(ctx context.Context, kind, id, backingFile string, raw []byte, expires time.Time) {
	if err := r.opts.store.PutRecord(ctx, kind, id, raw, expires); err != nil {
		r.opts.log.WarnContext(ctx, "keeping a copy of the metadata failed", "kind", kind, "id", id, "error", err)
	}
	if backingFile == "" {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(backingFile), ".metadata-*")
	if err == nil {
		_, err = tmp.Write(raw)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), backingFile)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}
	if err != nil {
		r.opts.log.WarnContext(ctx, "writing the metadata backing file failed", "file", backingFile, "error", err)
	}
}

// FederationStatus is the state of one federation's aggregate.
type FederationStatus struct {
	Name        string
	Entities    int
	LastSuccess time.Time
	Failures    uint64
}

// Federations reports every federation's state.
func (r *Registry) Federations() []FederationStatus {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]FederationStatus, 0, len(r.feds))
	for _, f := range r.feds {
		out = append(out, FederationStatus{Name: f.cfg.Name, Entities: len(f.entities), LastSuccess: f.lastSuccess, Failures: f.failedTotal})
	}
	return out
}

// federationCollector exports the federations' state to Prometheus.
type federationCollector struct{ r *Registry }

var (
	fedEntitiesDesc = prometheus.NewDesc("idp_saml_federation_entities",
		"SPs loaded from the federation's last good metadata aggregate.", []string{"federation"}, nil)
	fedLastSuccessDesc = prometheus.NewDesc("idp_saml_federation_last_success_timestamp_seconds",
		"When the federation's aggregate was last fetched and accepted (0: not since start).", []string{"federation"}, nil)
	fedFailuresDesc = prometheus.NewDesc("idp_saml_federation_refresh_failures_total",
		"Refreshes of the federation's aggregate that failed or were refused.", []string{"federation"}, nil)
)

var _ prometheus.Collector = federationCollector{}

func (c federationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- fedEntitiesDesc
	ch <- fedLastSuccessDesc
	ch <- fedFailuresDesc
}

func (c federationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.r.Federations() {
		var last float64
		if !f.LastSuccess.IsZero() {
			last = float64(f.LastSuccess.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(fedEntitiesDesc, prometheus.GaugeValue, float64(f.Entities), f.Name)
		ch <- prometheus.MustNewConstMetric(fedLastSuccessDesc, prometheus.GaugeValue, last, f.Name)
		ch <- prometheus.MustNewConstMetric(fedFailuresDesc, prometheus.CounterValue, float64(f.Failures), f.Name)
	}
}
