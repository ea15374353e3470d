package samlprovider

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campusidp/campusidp/config"
)

// AggregateSP is one SP of a generated federation aggregate.
type AggregateSP struct {
	EntityID   string
	ACS        string
	CertB64    string // signing and encryption key
	Categories []string
	Authority  string // mdrpi registrationAuthority, "" for the aggregate's
	// Requested are SAML attribute names; a "!" prefix marks isRequired.
	Requested    []string
	SubjectIDReq string
}

// BuildAggregate writes a federation EntitiesDescriptor with the given SPs
// and generated filler SPs, the size of real ones (several keys, UI texts,
// requested attributes), until there are n SPs in all.
func BuildAggregate(sps []AggregateSP, n int, certB64 string, validUntil time.Time) string {
	var b strings.Builder
	b.Grow(n * 11000)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"` +
		` xmlns:mdrpi="urn:oasis:names:tc:SAML:metadata:rpi" xmlns:mdattr="urn:oasis:names:tc:SAML:metadata:attribute"` +
		` xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui"` +
		` ID="_fed" Name="https://federation.example.jp"`)
	if !validUntil.IsZero() {
		fmt.Fprintf(&b, ` validUntil="%s"`, validUntil.UTC().Format(time.RFC3339))
	}
	b.WriteString(">\n")
	b.WriteString(`<md:Extensions><mdrpi:PublicationInfo publisher="https://federation.example.jp"/><mdrpi:RegistrationInfo registrationAuthority="https://federation.example.jp"/></md:Extensions>` + "\n")
	all := append([]AggregateSP(nil), sps...)
	for i := len(all); i < n; i++ {
		all = append(all, AggregateSP{
			EntityID:   fmt.Sprintf("https://sp%04d.member.example.jp/shibboleth-sp", i),
			ACS:        fmt.Sprintf("https://sp%04d.member.example.jp/Shibboleth.sso/SAML2/POST", i),
			CertB64:    certB64,
			Categories: []string{config.CategoryCoCoV2},
			Requested:  []string{"!urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "urn:oid:0.9.2342.19200300.100.1.3", "urn:oid:2.16.840.1.113730.3.1.241"},
		})
	}
	for i, sp := range all {
		writeAggregateSP(&b, i, sp)
	}
	// An IdP too, as real aggregates have; it is not an SP.
	fmt.Fprintf(&b, `<md:EntityDescriptor entityID="https://idp.other.example.jp/idp/shibboleth"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.other.example.jp/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>`+"\n", certB64)
	b.WriteString("</md:EntitiesDescriptor>\n")
	return b.String()
}

func writeAggregateSP(b *strings.Builder, i int, sp AggregateSP) {
	fmt.Fprintf(b, `<md:EntityDescriptor entityID="%s">`, sp.EntityID)
	b.WriteString(`<md:Extensions>`)
	if sp.Authority != "" {
		fmt.Fprintf(b, `<mdrpi:RegistrationInfo registrationAuthority="%s"/>`, sp.Authority)
	}
	if len(sp.Categories) > 0 || sp.SubjectIDReq != "" {
		b.WriteString(`<mdattr:EntityAttributes>`)
		if len(sp.Categories) > 0 {
			b.WriteString(`<saml:Attribute Name="http://macedir.org/entity-category" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">`)
			for _, c := range sp.Categories {
				fmt.Fprintf(b, `<saml:AttributeValue>%s</saml:AttributeValue>`, c)
			}
			b.WriteString(`</saml:Attribute>`)
		}
		if sp.SubjectIDReq != "" {
			fmt.Fprintf(b, `<saml:Attribute Name="urn:oasis:names:tc:SAML:profiles:subject-id:req" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue>%s</saml:AttributeValue></saml:Attribute>`, sp.SubjectIDReq)
		}
		b.WriteString(`</mdattr:EntityAttributes>`)
	}
	b.WriteString(`</md:Extensions>`)
	b.WriteString(`<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">`)
	fmt.Fprintf(b, `<md:Extensions><mdui:UIInfo><mdui:DisplayName xml:lang="ja">サービス %d</mdui:DisplayName><mdui:DisplayName xml:lang="en">Service %d</mdui:DisplayName>`, i, i)
	for _, lang := range []string{"ja", "en"} {
		fmt.Fprintf(b, `<mdui:Description xml:lang="%s">%s</mdui:Description>`, lang, strings.Repeat("A research service of a member institution. ", 40))
	}
	fmt.Fprintf(b, `<mdui:InformationURL xml:lang="en">https://service%d.example.jp/about</mdui:InformationURL><mdui:PrivacyStatementURL xml:lang="en">https://service%d.example.jp/privacy</mdui:PrivacyStatementURL><mdui:Logo height="64" width="64">https://service%d.example.jp/logo.png</mdui:Logo>`, i, i, i)
	b.WriteString(`</mdui:UIInfo></md:Extensions>`)
	// Signing and encryption keys, the next ones of a rollover too, as
	// real SPs publish.
	for _, use := range []string{"signing", "encryption", "signing", "encryption"} {
		kd := `<md:KeyDescriptor`
		if use != "" {
			kd += ` use="` + use + `"`
		}
		fmt.Fprintf(b, `%s><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`, kd, sp.CertB64)
	}
	base := sp.ACS[:strings.Index(sp.ACS[len("https://"):], "/")+len("https://")]
	fmt.Fprintf(b, `<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%s/Shibboleth.sso/SLO/Redirect"/>`, base)
	b.WriteString(`<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:transient</md:NameIDFormat>`)
	fmt.Fprintf(b, `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%s" index="1"/>`, sp.ACS)
	fmt.Fprintf(b, `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="%s/Shibboleth.sso/SAML2/Artifact" index="2"/>`, base)
	if len(sp.Requested) > 0 {
		fmt.Fprintf(b, `<md:AttributeConsumingService index="1"><md:ServiceName xml:lang="en">Service %d</md:ServiceName>`, i)
		for _, name := range sp.Requested {
			required := strings.HasPrefix(name, "!")
			fmt.Fprintf(b, `<md:RequestedAttribute Name="%s" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="%v"/>`, strings.TrimPrefix(name, "!"), required)
		}
		b.WriteString(`</md:AttributeConsumingService>`)
	}
	b.WriteString(`</md:SPSSODescriptor>`)
	fmt.Fprintf(b, `<md:Organization><md:OrganizationName xml:lang="en">Member %d</md:OrganizationName><md:OrganizationDisplayName xml:lang="en">Member %d</md:OrganizationDisplayName><md:OrganizationURL xml:lang="en">https://member%d.example.jp/</md:OrganizationURL></md:Organization>`, i, i, i)
	fmt.Fprintf(b, `<md:ContactPerson contactType="technical"><md:EmailAddress>mailto:sp-admin@member%d.example.jp</md:EmailAddress></md:ContactPerson>`, i)
	b.WriteString("</md:EntityDescriptor>\n")
}

// SignAggregate signs a generated aggregate as the federation does.
func SignAggregate(t testing.TB, md string, key *rsa.PrivateKey, cert *x509.Certificate) string {
	return signMetadata(t, md, key, cert)
}

// federationOf is a federation whose aggregate the test serves.
func federationOf(t testing.TB, url string, cert *x509.Certificate) config.SAMLFederation {
	file := filepath.Join(t.TempDir(), "fed.crt")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.SAMLFederation{Name: "testfed", MetadataURL: url, SigningCertFile: file, RequireValidUntil: true, MaxValidity: 30 * 24 * time.Hour}
}

// TestFederationAggregate: a signed aggregate of over a thousand SPs (over
// 10 MB) loads and trusts every SP in it; a tampered or unsigned one is
// refused and the last good copy stays, also across a restart; expired,
// missing or too distant validUntil are refused; an SP's own entry wins.
func TestFederationAggregate(t *testing.T) {
	ctx := context.Background()
	key, cert := unitKey(t, 1)
	_, spCert := unitKey(t, 0)
	certB64 := base64.StdEncoding.EncodeToString(spCert.Raw)
	now := time.Now()
	special := []AggregateSP{{
		EntityID: "https://rs.member.example.jp/sp", ACS: "https://rs.member.example.jp/acs", CertB64: certB64,
		Categories: []string{config.CategoryResearchAndScholarship}, Authority: "https://other-federation.example.org",
		SubjectIDReq: "pairwise-id",
	}}
	good := SignAggregate(t, BuildAggregate(special, 1000, certB64, now.Add(7*24*time.Hour)), key, cert)
	if len(good) < 10<<20 {
		t.Fatalf("the aggregate is %d bytes, want at least 10 MB", len(good))
	}
	mdSrv := &metadataServer{}
	mdSrv.set(http.StatusOK, good)
	srv := httptest.NewServer(mdSrv)
	defer srv.Close()

	db := openStore(t)
	fed := federationOf(t, srv.URL, cert)
	own := config.SAMLServiceProvider{EntityID: spID, MetadataFile: filepath.Join(t.TempDir(), "own.xml")}
	if err := os.WriteFile(own.MetadataFile, []byte(spMetadata(t, []string{"https://sp.campus.example/own-acs"}, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	override := config.SAMLServiceProvider{EntityID: "https://sp0500.member.example.jp/shibboleth-sp", RequireMFA: true}
	newReg := func() *Registry {
		r := newTestRegistry(db, []config.SAMLServiceProvider{own, override}, time.Now)
		r.opts.feds = []config.SAMLFederation{fed}
		return newRegistry(r.opts)
	}
	r := newReg()
	r.loadAll(ctx)

	st := r.Federations()
	if len(st) != 1 || st[0].Entities != 1000 || st[0].LastSuccess.IsZero() || st[0].Failures != 0 {
		t.Fatalf("federation status = %+v, want 1000 SPs loaded", st)
	}
	sp, ok := r.Lookup("https://sp0999.member.example.jp/shibboleth-sp")
	if !ok || sp.Federation != "testfed" || sp.descriptor().AssertionConsumerServices[0].Location != "https://sp0999.member.example.jp/Shibboleth.sso/SAML2/POST" {
		t.Fatalf("SP of the aggregate: %+v %v", sp, ok)
	}
	if len(sp.descriptor().AssertionConsumerServices) != 1 {
		t.Error("the HTTP-Artifact ACS was kept")
	}
	if _, ok := r.Lookup("https://idp.other.example.jp/idp/shibboleth"); ok {
		t.Error("an IdP of the aggregate is trusted as an SP")
	}
	rs, _ := r.Lookup("https://rs.member.example.jp/sp")
	if rs == nil || rs.Info.RegistrationAuthority != "https://other-federation.example.org" ||
		len(rs.Info.Categories) != 1 || rs.Info.SubjectIDRequirement != "pairwise-id" {
		t.Errorf("entity info of the R&S SP = %+v", rs)
	}
	if sp.Info.RegistrationAuthority != "https://federation.example.jp" {
		t.Errorf("the registration authority is not inherited from the aggregate: %+v", sp.Info)
	}
	if ov, _ := r.Lookup(override.EntityID); ov == nil || !ov.Config.RequireMFA {
		t.Errorf("the service_providers entry does not override the federation SP's settings: %+v", ov)
	}
	if acsOf(t, r) != "https://sp.campus.example/own-acs" {
		t.Error("an SP's own metadata does not win over the federation's")
	}

	// Refused aggregates keep the last good copy.
	tampered := strings.Replace(good, "https://sp0042.member.example.jp/Shibboleth.sso/SAML2/POST", "https://attacker.example/acs", 1)
	_, otherCert := unitKey(t, 0)
	cases := []struct {
		name string
		body string
		fed  config.SAMLFederation
	}{
		{"tampered", tampered, fed},
		{"unsigned", BuildAggregate(nil, 3, certB64, now.Add(time.Hour)), fed},
		{"signed by another key", good, federationOf(t, srv.URL, otherCert)},
		{"expired", SignAggregate(t, BuildAggregate(nil, 3, certB64, now.Add(-time.Minute)), key, cert), fed},
		{"no validUntil", SignAggregate(t, BuildAggregate(nil, 3, certB64, time.Time{}), key, cert), fed},
		{"validUntil beyond max_validity", SignAggregate(t, BuildAggregate(nil, 3, certB64, now.Add(60*24*time.Hour)), key, cert), fed},
		{"a single EntityDescriptor", signMetadata(t, spMetadata(t, []string{"https://sp.campus.example/acs"}, ""), key, cert), fed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mdSrv.set(http.StatusOK, tc.body)
			r.feds[0].cfg = tc.fed
			r.feds[0].signer, r.feds[0].signerErr = readCertFile(tc.fed.SigningCertFile)
			defer func() { r.feds[0].cfg = fed; r.feds[0].signer = cert }()
			err := r.RefreshFederation(ctx, "testfed")
			if !errors.Is(err, ErrMetadataRefused) {
				t.Fatalf("refresh err = %v, want refused", err)
			}
			if sp, ok := r.Lookup("https://sp0042.member.example.jp/shibboleth-sp"); !ok ||
				sp.descriptor().AssertionConsumerServices[0].Location != "https://sp0042.member.example.jp/Shibboleth.sso/SAML2/POST" {
				t.Errorf("the last good copy was not kept: %+v", sp)
			}
		})
	}
	if st := r.Federations(); st[0].Failures != uint64(len(cases)) || st[0].Entities != 1000 {
		t.Errorf("status after refusals = %+v", st)
	}

	// A restart while the federation serves garbage starts from the copy
	// kept in the store.
	mdSrv.set(http.StatusInternalServerError, "down")
	r2 := newReg()
	r2.loadAll(ctx)
	if _, ok := r2.Lookup("https://sp0042.member.example.jp/shibboleth-sp"); !ok {
		t.Error("the stored copy was not used after a restart")
	}
}

// TestFederationBackingFile: with metadata_file next to metadata_url, good
// downloads are written to the file, which serves a start without a store
// copy.
func TestFederationBackingFile(t *testing.T) {
	ctx := context.Background()
	key, cert := unitKey(t, 1)
	_, spCert := unitKey(t, 0)
	certB64 := base64.StdEncoding.EncodeToString(spCert.Raw)
	good := SignAggregate(t, BuildAggregate(nil, 5, certB64, time.Now().Add(24*time.Hour)), key, cert)
	mdSrv := &metadataServer{}
	mdSrv.set(http.StatusOK, good)
	srv := httptest.NewServer(mdSrv)
	defer srv.Close()
	fed := federationOf(t, srv.URL, cert)
	fed.MetadataFile = filepath.Join(t.TempDir(), "fed.xml") // not there yet

	r := newTestRegistry(openStore(t), nil, time.Now)
	r.opts.feds = []config.SAMLFederation{fed}
	r = newRegistry(r.opts)
	r.loadAll(ctx)
	if saved, err := os.ReadFile(fed.MetadataFile); err != nil || string(saved) != good {
		t.Fatalf("backing file not written: %v", err)
	}
	mdSrv.set(http.StatusInternalServerError, "down")
	r2 := newTestRegistry(openStore(t), nil, time.Now) // an empty store
	r2.opts.feds = []config.SAMLFederation{fed}
	r2 = newRegistry(r2.opts)
	r2.loadAll(ctx)
	if st := r2.Federations(); st[0].Entities != 5 {
		t.Errorf("start from the backing file: %+v", st)
	}
}

// TestFederationSizeLimit: saml.max_metadata_bytes refuses a larger
// aggregate, from a URL or a file, and the metrics report the refusal.
func TestFederationSizeLimit(t *testing.T) {
	ctx := context.Background()
	key, cert := unitKey(t, 1)
	_, spCert := unitKey(t, 0)
	md := SignAggregate(t, BuildAggregate(nil, 10, base64.StdEncoding.EncodeToString(spCert.Raw), time.Now().Add(time.Hour)), key, cert)
	mdSrv := &metadataServer{}
	mdSrv.set(http.StatusOK, md)
	srv := httptest.NewServer(mdSrv)
	defer srv.Close()
	fromURL := federationOf(t, srv.URL, cert)
	fromFile := federationOf(t, "", cert)
	fromFile.Name, fromFile.MetadataFile = "filefed", filepath.Join(t.TempDir(), "fed.xml")
	if err := os.WriteFile(fromFile.MetadataFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int64{int64(len(md)), int64(len(md)) - 1} {
		r := newTestRegistry(openStore(t), nil, time.Now)
		r.opts.feds = []config.SAMLFederation{fromURL, fromFile}
		r.opts.maxSize = limit
		r = newRegistry(r.opts)
		r.loadAll(ctx)
		for _, st := range r.Federations() {
			if fits := limit >= int64(len(md)); (st.Entities == 10) != fits || (st.Failures == 0) != fits {
				t.Errorf("limit %d, aggregate of %d bytes: %+v", limit, len(md), st)
			}
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(federationCollector{r})
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range families {
			for _, m := range mf.GetMetric() {
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = v
			}
		}
		wantEntities, wantFailures := 10.0, 0.0
		if limit < int64(len(md)) {
			wantEntities, wantFailures = 0, 1
		}
		if len(got) != 6 || got["idp_saml_federation_entities/filefed"] != wantEntities ||
			got["idp_saml_federation_refresh_failures_total/testfed"] != wantFailures ||
			(got["idp_saml_federation_last_success_timestamp_seconds/testfed"] > 0) != (wantFailures == 0) {
			t.Errorf("limit %d: metrics %v", limit, got)
		}
	}
}

// BenchmarkLoadAggregate measures one refresh's parse of a signed
// aggregate of 1,000 SPs (about 11 MB): signature check, parsing, and the
// registry entries.
func BenchmarkLoadAggregate(b *testing.B) {
	key, cert := unitKey(b, 1)
	_, spCert := unitKey(b, 0)
	raw := []byte(SignAggregate(b, BuildAggregate(nil, 1000, base64.StdEncoding.EncodeToString(spCert.Raw), time.Now().Add(24*time.Hour)), key, cert))
	fed := config.SAMLFederation{Name: "bench"}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var entities map[string]*ServiceProvider
	for b.Loop() {
		var err error
		entities, _, err = parseAggregate(raw, fed, cert, nil, time.Now(), func(string, ...any) {})
		if err != nil || len(entities) != 1000 {
			b.Fatalf("%d SPs, %v", len(entities), err)
		}
	}
	// What the registry keeps of one load, once the parse is over.
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1e6, "MB-kept")
	runtime.KeepAlive(entities)
}

// TestSPBackingFile: an SP with metadata_url and a metadata_file that does
// not exist yet gets the file written on a good download, and starts from
// it when the store has no copy and the URL is down.
func TestSPBackingFile(t *testing.T) {
	ctx := context.Background()
	md := spMetadata(t, []string{"https://sp.campus.example/acs-1"}, "")
	mdSrv := &metadataServer{}
	mdSrv.set(http.StatusOK, md)
	srv := httptest.NewServer(mdSrv)
	defer srv.Close()
	sp := config.SAMLServiceProvider{EntityID: spID, MetadataURL: srv.URL, MetadataFile: filepath.Join(t.TempDir(), "sp.xml")}

	r := newTestRegistry(openStore(t), []config.SAMLServiceProvider{sp}, time.Now)
	r.loadAll(ctx)
	if saved, err := os.ReadFile(sp.MetadataFile); err != nil || string(saved) != md {
		t.Fatalf("backing file not written: %v", err)
	}
	mdSrv.set(http.StatusInternalServerError, "down")
	r2 := newTestRegistry(openStore(t), []config.SAMLServiceProvider{sp}, time.Now)
	r2.loadAll(ctx)
	if acsOf(t, r2) != "https://sp.campus.example/acs-1" {
		t.Error("the backing file was not used")
	}
}
