package samlprovider

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

const (
	// maxMetadataBytes bounds one metadata document when the config does
	// not say.
	maxMetadataBytes = config.DefaultMaxMetadataBytes
	// storedMetadataLife is how long the last good copy of fetched metadata
	// is kept in the store when the metadata sets no validUntil.
	storedMetadataLife = 30 * 24 * time.Hour
	// maxRetryAfterFailure caps the wait before retrying a failed refresh.
	maxRetryAfterFailure = 5 * time.Minute

	recordSPMetadata = "saml_sp_metadata"
	samlProtocol     = "urn:oasis:names:tc:SAML:2.0:protocol"
)

// ErrMetadataRefused is wrapped by every reason SP metadata is not used.
var ErrMetadataRefused = errors.New("saml: SP metadata refused")

// ServiceProvider is a registered SP: its settings and its validated
// metadata.
type ServiceProvider struct {
	Config config.SAMLServiceProvider
	// Entity is the sanitised metadata: one SPSSODescriptor whose
	// AssertionConsumerServices are the HTTP-POST endpoints only.
	Entity *saml.EntityDescriptor
	// SigningCerts verify the SP's signed requests.
	SigningCerts []*x509.Certificate
	// EncryptionCert encrypts assertions; nil when the metadata has no RSA
	// encryption key.
	EncryptionCert *x509.Certificate
	// EncryptionMethods are the block ciphers the metadata lists, in order.
	EncryptionMethods []string
	// SingleLogout are the SP's HTTP-Redirect and HTTP-POST SLO endpoints.
	SingleLogout []saml.Endpoint
	// AuthnRequestsSigned is the metadata's promise to sign requests.
	AuthnRequestsSigned bool
	LoadedAt            time.Time
	ValidUntil          time.Time
	// Info is what the metadata says about the SP beyond the protocol:
	// what it requests, its entity categories, its registrar.
	Info EntityInfo
	// Federation names the aggregate the metadata came from; "" for an
	// SP's own metadata.
	Federation string
}

// descriptor is the SP's (sanitised) SSO descriptor.
func (sp *ServiceProvider) descriptor() *saml.SPSSODescriptor { return &sp.Entity.SPSSODescriptors[0] }

// wantsSignedRequests says whether unsigned requests are refused.
func (sp *ServiceProvider) wantsSignedRequests() bool {
	return sp.AuthnRequestsSigned || sp.Config.RequireSignedRequests
}

// encrypts says whether assertions to this SP are encrypted.
func (sp *ServiceProvider) encrypts() bool {
	return sp.EncryptionCert != nil && sp.Config.EncryptionOrDefault() != config.SAMLEncryptionOff
}

// displayName is what the login page calls the SP.
func (sp *ServiceProvider) displayName() string {
	if sp.Config.Name != "" {
		return sp.Config.Name
	}
	// What the federation publishes for its SPs.
	if n := cmp.Or(sp.Info.DisplayName.EN, sp.Info.DisplayName.JA); n != "" && !strings.ContainsAny(n, "\r\n") {
		return n
	}
	if u, err := url.Parse(sp.Entity.EntityID); err == nil && u.Host != "" {
		return u.Host
	}
	return sp.Entity.EntityID
}

// Registry holds the registered SPs with their last good metadata. It is
// the crewjam ServiceProviderProvider of the IdP.
type Registry struct {
	opts registryOptions

	mu      sync.RWMutex
	entries map[string]*spState
	order   []string
	// overrides are service_providers entries without metadata of their
	// own: settings for an SP of a federation.
	overrides map[string]config.SAMLServiceProvider
	feds      []*fedState
}

type spState struct {
	cfg config.SAMLServiceProvider
	// signer, when set, must have signed the metadata.
	signer    *x509.Certificate
	signerErr error

	current  *ServiceProvider // the last good metadata, nil if none yet
	next     time.Time        // when to re-read
	failures int
}

type registryOptions struct {
	sps       []config.SAMLServiceProvider
	refresh   time.Duration
	client    *http.Client
	store     Store
	log       *slog.Logger
	now       func() time.Time
	maxSize   int64
	certFiles func(string) (*x509.Certificate, error)
	feds      []config.SAMLFederation
}

func newRegistry(opts registryOptions) *Registry {
	r := &Registry{opts: opts, entries: map[string]*spState{}, overrides: map[string]config.SAMLServiceProvider{}}
	for _, f := range opts.feds {
		st := &fedState{cfg: f}
		st.signer, st.signerErr = opts.certFiles(f.SigningCertFile)
		r.feds = append(r.feds, st)
	}
	for _, c := range opts.sps {
		if c.MetadataFile == "" && c.MetadataURL == "" {
			r.overrides[c.EntityID] = c
			continue
		}
		st := &spState{cfg: c}
		if c.MetadataSigningCertFile != "" {
			st.signer, st.signerErr = opts.certFiles(c.MetadataSigningCertFile)
		}
		r.entries[c.EntityID] = st
		r.order = append(r.order, c.EntityID)
	}
	return r
}

// Lookup returns the SP with its current metadata, or false if the SP is
// not registered, none of its metadata has been accepted yet, or the last
// good copy has passed its validUntil.
func (r *Registry) Lookup(entityID string) (*ServiceProvider, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var sp *ServiceProvider
	if st, ok := r.entries[entityID]; ok {
		// An SP's own metadata wins over a federation's.
		sp = st.current
	} else {
		for _, f := range r.feds {
			if sp = f.entities[entityID]; sp != nil {
				break
			}
		}
	}
	if sp == nil {
		return nil, false
	}
	if until := sp.ValidUntil; !until.IsZero() && !r.opts.now().Before(until) {
		return nil, false
	}
	return sp, true
}

// GetServiceProvider implements saml.ServiceProviderProvider: the
// sanitised metadata of a registered SP, or os.ErrNotExist.
func (r *Registry) GetServiceProvider(_ *http.Request, serviceProviderID string) (*saml.EntityDescriptor, error) {
	sp, ok := r.Lookup(serviceProviderID)
	if !ok {
		return nil, os.ErrNotExist
	}
	return sp.Entity, nil
}

// loadAll reads every SP's metadata once at start. A URL source first
// takes the copy kept in the store, so an unreachable metadata server does
// not lock the SP out after a restart. Failures are logged, not returned:
// one broken SP must not keep the IdP from serving the others.
func (r *Registry) loadAll(ctx context.Context) {
	for _, f := range r.feds {
		if f.cfg.MetadataURL != "" {
			r.loadStoredAggregate(ctx, f)
		}
		_ = r.refreshFederation(ctx, f)
	}
	for _, id := range r.order {
		st := r.entries[id]
		if st.cfg.MetadataURL != "" {
			r.loadStoredCopy(ctx, st)
		}
		_ = r.refresh(ctx, st)
	}
}

func (r *Registry) loadStoredCopy(ctx context.Context, st *spState) {
	now := r.opts.now()
	raw, err := r.storedCopy(ctx, recordSPMetadata, st.cfg.EntityID, st.cfg.MetadataFile, now)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.opts.log.WarnContext(ctx, "reading the stored SP metadata failed", "sp", st.cfg.EntityID, "error", err)
		}
		return
	}
	sp, err := parseSPMetadata(raw, st.cfg, st.signer, now)
	if err != nil {
		r.opts.log.WarnContext(ctx, "the stored SP metadata is no longer valid", "sp", st.cfg.EntityID, "error", err)
		return
	}
	r.mu.Lock()
	st.current = sp
	r.mu.Unlock()
}

// Refresh re-reads one SP's metadata now. On failure the last good copy
// stays in use and the error is returned.
func (r *Registry) Refresh(ctx context.Context, entityID string) error {
	r.mu.RLock()
	st, ok := r.entries[entityID]
	r.mu.RUnlock()
	if !ok {
		return fmt.Errorf("saml: %q is not a registered SP", entityID)
	}
	return r.refresh(ctx, st)
}

func (r *Registry) refresh(ctx context.Context, st *spState) error {
	interval := st.cfg.Refresh(r.opts.refresh)
	sp, raw, err := r.read(ctx, st)
	now := r.opts.now()
	r.mu.Lock()
	if err != nil {
		st.failures++
		st.next = now.Add(min(interval, maxRetryAfterFailure))
		kept, failures := st.current != nil, st.failures
		r.mu.Unlock()
		r.opts.log.ErrorContext(ctx, "SP metadata not loaded", "sp", st.cfg.EntityID,
			"source", source(st.cfg), "keeping_last_good_copy", kept, "failures_in_a_row", failures, "error", err)
		return err
	}
	st.current = sp
	st.failures = 0
	st.next = now.Add(interval)
	r.mu.Unlock()
	r.opts.log.InfoContext(ctx, "SP metadata loaded", "sp", st.cfg.EntityID, "source", source(st.cfg),
		"acs", len(sp.descriptor().AssertionConsumerServices), "encrypts", sp.encrypts())

	if st.cfg.MetadataURL != "" {
		expires := now.Add(storedMetadataLife)
		if !sp.ValidUntil.IsZero() {
			expires = sp.ValidUntil
		}
		r.keepCopy(ctx, recordSPMetadata, st.cfg.EntityID, st.cfg.MetadataFile, raw, expires)
	}
	return nil
}

func source(c config.SAMLServiceProvider) string {
	if c.MetadataURL != "" {
		return c.MetadataURL
	}
	return c.MetadataFile
}

// read fetches and validates an SP's metadata.
func (r *Registry) read(ctx context.Context, st *spState) (*ServiceProvider, []byte, error) {
	if st.signerErr != nil {
		return nil, nil, fmt.Errorf("%w: metadata signing certificate: %w", ErrMetadataRefused, st.signerErr)
	}
	var raw []byte
	var err error
	if st.cfg.MetadataURL != "" {
		raw, err = r.fetch(ctx, st.cfg.MetadataURL)
	} else {
		raw, err = readLimited(st.cfg.MetadataFile, r.opts.maxSize)
	}
	if err != nil {
		return nil, nil, err
	}
	sp, err := parseSPMetadata(raw, st.cfg, st.signer, r.opts.now())
	return sp, raw, err
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, limit)
}

func readAtMost(rd io.Reader, limit int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMetadataRefused, limit)
	}
	return raw, nil
}

func (r *Registry) fetch(ctx context.Context, rawURL string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8")
	resp, err := r.opts.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching metadata: HTTP status %d", resp.StatusCode)
	}
	return readAtMost(resp.Body, r.opts.maxSize)
}

// run re-reads each SP's metadata when it is due, until ctx ends.
func (r *Registry) run(ctx context.Context) {
	for {
		r.mu.RLock()
		var due time.Time
		for _, st := range r.entries {
			if due.IsZero() || st.next.Before(due) {
				due = st.next
			}
		}
		for _, f := range r.feds {
			if due.IsZero() || f.next.Before(due) {
				due = f.next
			}
		}
		r.mu.RUnlock()
		if due.IsZero() {
			<-ctx.Done()
			return
		}
		// The floor only guards against a busy loop; every refresh moves
		// its SP's next time forward.
		timer := time.NewTimer(max(due.Sub(r.opts.now()), 100*time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		now := r.opts.now()
		for _, f := range r.feds {
			r.mu.RLock()
			isDue := !f.next.After(now)
			r.mu.RUnlock()
			if isDue {
				_ = r.refreshFederation(ctx, f)
			}
		}
		for _, id := range r.order {
			st := r.entries[id]
			r.mu.RLock()
			isDue := !st.next.After(now)
			r.mu.RUnlock()
			if isDue {
				_ = r.refresh(ctx, st)
			}
		}
	}
}

// parseSPMetadata validates metadata for the SP configured as cfg.
func parseSPMetadata(raw []byte, cfg config.SAMLServiceProvider, signer *x509.Certificate, now time.Time) (*ServiceProvider, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMetadataRefused, fmt.Sprintf(format, args...))
	}
	if err := xrv.Validate(bytes.NewReader(raw)); err != nil {
		return nil, refuse("not well-formed XML: %v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		return nil, refuse("not XML: %v", err)
	}
	if hasDirective(doc) {
		return nil, refuse("has a DOCTYPE")
	}
	root := doc.Root()
	if signer != nil {
		verified, err := verifyEnveloped(root, []*x509.Certificate{signer})
		if err != nil {
			return nil, refuse("signature: %v", err)
		}
		// Read only what the signature covers.
		d := etree.NewDocument()
		d.SetRoot(verified)
		if raw, err = d.WriteToBytes(); err != nil {
			return nil, err
		}
		root = verified
	}

	var entity *saml.EntityDescriptor
	switch root.Tag {
	case "EntityDescriptor":
		var ed saml.EntityDescriptor
		if err := xml.Unmarshal(raw, &ed); err != nil {
			return nil, refuse("%v", err)
		}
		entity = &ed
	case "EntitiesDescriptor":
		var eds saml.EntitiesDescriptor
		if err := xml.Unmarshal(raw, &eds); err != nil {
			return nil, refuse("%v", err)
		}
		if eds.ValidUntil != nil && !eds.ValidUntil.IsZero() && !now.Before(*eds.ValidUntil) {
			return nil, refuse("expired at %s (validUntil)", eds.ValidUntil.UTC().Format(time.RFC3339))
		}
		entity = findEntity(&eds, cfg.EntityID)
		if entity == nil {
			return nil, refuse("no EntityDescriptor for %q", cfg.EntityID)
		}
	default:
		return nil, refuse("root element is %s, not EntityDescriptor", root.Tag)
	}
	if entity.EntityID != cfg.EntityID {
		return nil, refuse("entityID is %q, registered as %q", entity.EntityID, cfg.EntityID)
	}
	sp, err := buildSP(entity, cfg, now)
	if err != nil {
		return nil, err
	}
	if el := findEntityElement(root, cfg.EntityID); el != nil {
		sp.Info = readEntityInfo(el, inheritedAuthority(el))
	}
	return sp, nil
}

// buildSP validates one EntityDescriptor of an SP and keeps the parts the
// IdP uses.
func buildSP(entity *saml.EntityDescriptor, cfg config.SAMLServiceProvider, now time.Time) (*ServiceProvider, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMetadataRefused, fmt.Sprintf(format, args...))
	}
	if !entity.ValidUntil.IsZero() && !now.Before(entity.ValidUntil) {
		return nil, refuse("expired at %s (validUntil)", entity.ValidUntil.UTC().Format(time.RFC3339))
	}

	var desc *saml.SPSSODescriptor
	for i := range entity.SPSSODescriptors {
		if slices.Contains(strings.Fields(entity.SPSSODescriptors[i].ProtocolSupportEnumeration), samlProtocol) {
			desc = &entity.SPSSODescriptors[i]
			break
		}
	}
	if desc == nil {
		return nil, refuse("no SPSSODescriptor for SAML 2.0")
	}

	sp := &ServiceProvider{Config: cfg, LoadedAt: now, ValidUntil: entity.ValidUntil}
	clean := saml.SPSSODescriptor{
		AuthnRequestsSigned:  desc.AuthnRequestsSigned,
		WantAssertionsSigned: desc.WantAssertionsSigned,
	}
	clean.ProtocolSupportEnumeration = samlProtocol
	for _, acs := range desc.AssertionConsumerServices {
		if acs.Location == "" {
			continue // a binding crewjam does not know; it cleared the location
		}
		if err := checkEndpointURL(acs.Location); err != nil {
			return nil, refuse("AssertionConsumerService %q: %v", acs.Location, err)
		}
		if acs.Binding == saml.HTTPPostBinding {
			clean.AssertionConsumerServices = append(clean.AssertionConsumerServices, acs)
		}
	}
	if len(clean.AssertionConsumerServices) == 0 {
		return nil, refuse("no HTTP-POST AssertionConsumerService")
	}
	for _, slo := range desc.SingleLogoutServices {
		if slo.Location == "" {
			continue
		}
		for _, loc := range []string{slo.Location, slo.ResponseLocation} {
			if loc == "" {
				continue
			}
			if err := checkEndpointURL(loc); err != nil {
				return nil, refuse("SingleLogoutService %q: %v", loc, err)
			}
		}
		if slo.Binding == saml.HTTPRedirectBinding || slo.Binding == saml.HTTPPostBinding {
			sp.SingleLogout = append(sp.SingleLogout, slo)
		}
	}
	clean.SingleLogoutServices = sp.SingleLogout
	clean.NameIDFormats = desc.NameIDFormats
	clean.AttributeConsumingServices = desc.AttributeConsumingServices

	for _, kd := range desc.KeyDescriptors {
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
			if err != nil {
				return nil, refuse("certificate is not base64: %v", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, refuse("certificate does not parse: %v", err)
			}
			if kd.Use == "" || kd.Use == "signing" {
				sp.SigningCerts = append(sp.SigningCerts, cert)
			}
			if _, isRSA := cert.PublicKey.(*rsa.PublicKey); (kd.Use == "" || kd.Use == "encryption") && isRSA && sp.EncryptionCert == nil {
				sp.EncryptionCert = cert
				for _, m := range kd.EncryptionMethods {
					sp.EncryptionMethods = append(sp.EncryptionMethods, m.Algorithm)
				}
			}
		}
		clean.KeyDescriptors = append(clean.KeyDescriptors, kd)
	}
	if sp.EncryptionCert == nil && cfg.EncryptionOrDefault() == config.SAMLEncryptionRequired {
		return nil, refuse("encryption is required but the metadata has no RSA encryption key")
	}
	sp.AuthnRequestsSigned = desc.AuthnRequestsSigned != nil && *desc.AuthnRequestsSigned
	sp.Entity = &saml.EntityDescriptor{
		EntityID:         entity.EntityID,
		ValidUntil:       entity.ValidUntil,
		SPSSODescriptors: []saml.SPSSODescriptor{clean},
	}
	return sp, nil
}

func findEntity(eds *saml.EntitiesDescriptor, id string) *saml.EntityDescriptor {
	for i := range eds.EntityDescriptors {
		if eds.EntityDescriptors[i].EntityID == id {
			return &eds.EntityDescriptors[i]
		}
	}
	for i := range eds.EntitiesDescriptors {
		if e := findEntity(&eds.EntitiesDescriptors[i], id); e != nil {
			return e
		}
	}
	return nil
}

// checkEndpointURL accepts only absolute http(s) URLs with a host: an ACS
// is where the browser posts the assertion, so a javascript: or data: URL
// would run script in the IdP's origin.
func checkEndpointURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Host == "" || u.Opaque != "":
		return errors.New("not an absolute URL with a host")
	case u.User != nil:
		return errors.New("carries user information")
	case u.Fragment != "":
		return errors.New("has a fragment")
	}
	return nil
}
