package samlprovider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/store"
)

var (
	unitKeysOnce sync.Once
	unitKeys     [2]*rsa.PrivateKey
	unitCerts    [2]*x509.Certificate
)

// unitKey returns one of two shared test keys with a certificate that
// expired long ago: metadata trust does not depend on certificate dates.
func unitKey(t testing.TB, i int) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	unitKeysOnce.Do(func() {
		for n := range unitKeys {
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(n + 1)), Subject: pkix.Name{CommonName: "unit"},
				NotBefore: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				panic(err)
			}
			unitKeys[n] = key
			unitCerts[n], _ = x509.ParseCertificate(der)
		}
	})
	return unitKeys[i], unitCerts[i]
}

const spID = "https://sp.campus.example/sp"

// spMetadata writes SP metadata with the given ACS locations (HTTP-POST)
// and optional extra XML inside the SPSSODescriptor.
func spMetadata(t testing.TB, acs []string, extra string) string {
	_, cert := unitKey(t, 0)
	var b strings.Builder
	fmt.Fprintf(&b, `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_md1" entityID="%s">`, spID)
	b.WriteString(`<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">`)
	fmt.Fprintf(&b, `<md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`,
		base64.StdEncoding.EncodeToString(cert.Raw))
	b.WriteString(extra)
	for i, loc := range acs {
		fmt.Fprintf(&b, `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="%s" index="%d"/>`, loc, i)
	}
	b.WriteString(`</md:SPSSODescriptor></md:EntityDescriptor>`)
	return b.String()
}

func TestParseSPMetadata(t *testing.T) {
	now := time.Now()
	good := spMetadata(t, []string{"https://sp.campus.example/acs"}, "")
	cfg := config.SAMLServiceProvider{EntityID: spID}
	cases := []struct {
		name    string
		md      string
		cfg     config.SAMLServiceProvider
		wantErr string // "" for accepted
	}{
		{"good", good, cfg, ""},
		{"inside an EntitiesDescriptor", `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">` +
			strings.Replace(spMetadata(t, []string{"https://sp.campus.example/acs"}, ""), `entityID="`+spID+`"`, `entityID="https://other.example/sp"`, 1) +
			good + `</md:EntitiesDescriptor>`, cfg, ""},
		{"javascript: ACS", spMetadata(t, []string{"https://sp.campus.example/acs", "javascript:alert(1)"}, ""), cfg, "scheme"},
		{"data: ACS", spMetadata(t, []string{"data:text/html,hi"}, ""), cfg, "scheme"},
		{"ACS without host", spMetadata(t, []string{"https:///acs"}, ""), cfg, "host"},
		{"ACS with user info", spMetadata(t, []string{"https://user:pw@sp.campus.example/acs"}, ""), cfg, "user information"},
		{"javascript: in an unknown binding", spMetadata(t, []string{"https://sp.campus.example/acs"},
			`<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="javascript:x" index="9"/>`), cfg, "scheme"},
		{"javascript: SLO", spMetadata(t, []string{"https://sp.campus.example/acs"},
			`<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="javascript:x"/>`), cfg, "scheme"},
		{"no POST ACS", strings.ReplaceAll(good, "HTTP-POST", "HTTP-Artifact"), cfg, "no HTTP-POST"},
		{"other entity", good, config.SAMLServiceProvider{EntityID: "https://other.example/sp"}, "registered as"},
		{"expired", strings.Replace(good, `ID="_md1"`, `ID="_md1" validUntil="2020-01-01T00:00:00Z"`, 1), cfg, "expired"},
		{"no SAML 2 role", strings.Replace(good, "urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:1.1:protocol", 1), cfg, "no SPSSODescriptor"},
		{"encryption required but no key", good, config.SAMLServiceProvider{EntityID: spID, Encryption: config.SAMLEncryptionRequired}, ""},
		{"bad certificate", strings.Replace(good, "<ds:X509Certificate>", "<ds:X509Certificate>AAAA", 1), cfg, "certificate"},
		{"not XML", "not xml", cfg, "XML"},
		{"DOCTYPE", `<!DOCTYPE md [<!ENTITY x "y">]>` + good, cfg, "DOCTYPE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := parseSPMetadata([]byte(tc.md), tc.cfg, nil, now)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMetadataRefused)):
				t.Fatalf("err = %v, want a refusal mentioning %q", err, tc.wantErr)
			case err == nil:
				acs := sp.descriptor().AssertionConsumerServices
				if len(acs) == 0 || acs[0].Location != "https://sp.campus.example/acs" {
					t.Errorf("ACS %+v", acs)
				}
			}
		})
	}

	// A KeyDescriptor without use serves both signing and encryption.
	sp, err := parseSPMetadata([]byte(good), config.SAMLServiceProvider{EntityID: spID, Encryption: config.SAMLEncryptionRequired}, nil, now)
	if err != nil || sp.EncryptionCert == nil || len(sp.SigningCerts) != 1 || !sp.encrypts() {
		t.Errorf("key use: err %v, encryption %v, signing %d", err, sp != nil && sp.EncryptionCert != nil, len(sp.SigningCerts))
	}
	sp, _ = parseSPMetadata([]byte(good), config.SAMLServiceProvider{EntityID: spID, Encryption: config.SAMLEncryptionOff}, nil, now)
	if sp.encrypts() {
		t.Error("encryption: off still encrypts")
	}
	signingOnly := strings.Replace(good, "<md:KeyDescriptor>", `<md:KeyDescriptor use="signing">`, 1)
	if _, err := parseSPMetadata([]byte(signingOnly), config.SAMLServiceProvider{EntityID: spID, Encryption: config.SAMLEncryptionRequired}, nil, now); err == nil {
		t.Error("encryption: required accepted metadata without an encryption key")
	}
}

// signMetadata signs metadata as a federation would.
func signMetadata(t testing.TB, md string, key *rsa.PrivateKey, cert *x509.Certificate) string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(md); err != nil {
		t.Fatal(err)
	}
	ctx, err := dsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	// The schema puts the signature first, where verifiers find it without
	// walking the whole document (goxmldsig stops after 1,000 elements).
	for i := len(signed.Child) - 1; i >= 0; i-- {
		if sig, ok := signed.Child[i].(*etree.Element); ok && sig.Tag == "Signature" {
			signed.RemoveChildAt(i)
			signed.InsertChildAt(0, sig)
			break
		}
	}
	doc.SetRoot(signed)
	out, _ := doc.WriteToString()
	return out
}

func TestSignedMetadata(t *testing.T) {
	key, cert := unitKey(t, 1)
	_, otherCert := unitKey(t, 0)
	md := spMetadata(t, []string{"https://sp.campus.example/acs"}, "")
	signed := signMetadata(t, md, key, cert)
	cfg := config.SAMLServiceProvider{EntityID: spID}
	cases := []struct {
		name   string
		md     string
		signer *x509.Certificate
		ok     bool
	}{
		{"signed by the federation (expired certificate dates do not matter)", signed, cert, true},
		{"unsigned", md, cert, false},
		{"signed by another key", signed, otherCert, false},
		{"changed after signing", strings.Replace(signed, "https://sp.campus.example/acs", "https://attacker.example/acs", 1), cert, false},
		{"signature not checked when no signer is configured", md, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSPMetadata([]byte(tc.md), cfg, tc.signer, time.Now())
			if (err == nil) != tc.ok {
				t.Errorf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// metadataServer serves SP metadata that a test can change.
type metadataServer struct {
	mu     sync.Mutex
	body   string
	status int
}

func (m *metadataServer) set(status int, body string) {
	m.mu.Lock()
	m.status, m.body = status, body
	m.mu.Unlock()
}

func (m *metadataServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.WriteHeader(m.status)
	_, _ = w.Write([]byte(m.body))
}

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "idp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newTestRegistry(db *store.DB, sps []config.SAMLServiceProvider, now func() time.Time) *Registry {
	return newRegistry(registryOptions{
		sps: sps, refresh: time.Hour, client: &http.Client{Timeout: 5 * time.Second}, store: db,
		log: slog.New(slog.DiscardHandler), now: now, maxSize: maxMetadataBytes, certFiles: readCertFile,
	})
}

func acsOf(t *testing.T, r *Registry) string {
	t.Helper()
	sp, ok := r.Lookup(spID)
	if !ok {
		t.Fatal("SP not registered")
	}
	return sp.descriptor().AssertionConsumerServices[0].Location
}

// TestMetadataFromURL: metadata from a URL is refreshed; a failed or
// refused refresh keeps the last good copy, which also survives a restart
// while the metadata server is down.
func TestMetadataFromURL(t *testing.T) {
	ctx := context.Background()
	mdSrv := &metadataServer{}
	mdSrv.set(http.StatusOK, spMetadata(t, []string{"https://sp.campus.example/acs-1"}, ""))
	srv := httptest.NewServer(mdSrv)
	defer srv.Close()
	db := openStore(t)
	cfg := []config.SAMLServiceProvider{{EntityID: spID, MetadataURL: srv.URL + "/md.xml"}}

	r := newTestRegistry(db, cfg, time.Now)
	r.loadAll(ctx)
	if got := acsOf(t, r); got != "https://sp.campus.example/acs-1" {
		t.Fatalf("ACS %q", got)
	}
	steps := []struct {
		name    string
		status  int
		body    string
		wantErr bool
		wantACS string
	}{
		{"new metadata", http.StatusOK, spMetadata(t, []string{"https://sp.campus.example/acs-2"}, ""), false, "https://sp.campus.example/acs-2"},
		{"javascript: ACS keeps the last good copy", http.StatusOK, spMetadata(t, []string{"javascript:alert(1)"}, ""), true, "https://sp.campus.example/acs-2"},
		{"server error keeps it", http.StatusInternalServerError, "oops", true, "https://sp.campus.example/acs-2"},
		{"too large keeps it", http.StatusOK, strings.Repeat(" ", maxMetadataBytes+1), true, "https://sp.campus.example/acs-2"},
		{"recovered", http.StatusOK, spMetadata(t, []string{"https://sp.campus.example/acs-3"}, ""), false, "https://sp.campus.example/acs-3"},
	}
	for _, s := range steps {
		mdSrv.set(s.status, s.body)
		err := r.Refresh(ctx, spID)
		if (err != nil) != s.wantErr {
			t.Errorf("%s: err = %v", s.name, err)
		}
		if got := acsOf(t, r); got != s.wantACS {
			t.Errorf("%s: ACS %q, want %q", s.name, got, s.wantACS)
		}
	}

	// A last good copy that expires while in use is no longer used.
	validUntil := time.Now().Add(time.Hour)
	mdSrv.set(http.StatusOK, strings.Replace(spMetadata(t, []string{"https://sp.campus.example/acs-3"}, ""),
		`ID="_md1"`, `ID="_md1" validUntil="`+validUntil.UTC().Format(time.RFC3339)+`"`, 1))
	later := time.Now
	expiring := newTestRegistry(openStore(t), cfg, func() time.Time { return later() })
	expiring.loadAll(ctx)
	if _, ok := expiring.Lookup(spID); !ok {
		t.Fatal("metadata with a future validUntil refused")
	}
	later = func() time.Time { return validUntil.Add(time.Second) }
	if _, ok := expiring.Lookup(spID); ok {
		t.Error("expired metadata still in use")
	}

	// Restart with the metadata server down: the stored copy serves.
	srv.Close()
	restarted := newTestRegistry(db, cfg, time.Now)
	restarted.loadAll(ctx)
	if got := acsOf(t, restarted); got != "https://sp.campus.example/acs-3" {
		t.Errorf("after restart: ACS %q", got)
	}
	// A fresh store and no server: not registered, and requests from it are
	// refused as from an unknown SP.
	cold := newTestRegistry(openStore(t), cfg, time.Now)
	cold.loadAll(ctx)
	if _, ok := cold.Lookup(spID); ok {
		t.Error("registered without any metadata")
	}
	if _, err := cold.GetServiceProvider(nil, spID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("GetServiceProvider: %v, want os.ErrNotExist", err)
	}
}

// TestRefreshSchedule: run re-reads metadata whenever it is due, and
// retries a failure.
func TestRefreshSchedule(t *testing.T) {
	var (
		mu   sync.Mutex
		hits int
	)
	body := spMetadata(t, []string{"https://sp.campus.example/acs"}, "")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if hits == 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	// Shorter than the config allows, so the test does not wait minutes.
	cfg := []config.SAMLServiceProvider{{EntityID: spID, MetadataURL: srv.URL, MetadataRefresh: 150 * time.Millisecond}}
	r := newTestRegistry(openStore(t), cfg, time.Now)
	r.loadAll(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := hits
		mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata fetched %d times in 10s, want refreshes every 150ms", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if _, ok := r.Lookup(spID); !ok {
		t.Error("the SP was lost")
	}
}
