package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/samlprovider"
)

// newSAML mounts the SAML identity provider on app when it is enabled,
// over the app's config and store as an embedding program does.
func newSAML(ctx context.Context, app *idp.App, logger *slog.Logger) (*samlprovider.Provider, error) {
	if !app.Config().SAML.Enabled {
		return nil, nil
	}
	return samlprovider.New(ctx, app, samlprovider.Options{Logger: logger})
}

// devSAMLMetadata fills every setting of the IdP's metadata for idp dev,
// so its metadata shows what a federation registration publishes. The
// encryption certificate is a throwaway written to dir.
func devSAMLMetadata(dir, baseURL string) (config.SAMLMetadata, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return config.SAMLMetadata{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp dev encryption"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return config.SAMLMetadata{}, err
	}
	certFile := filepath.Join(dir, "saml-encryption.crt")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return config.SAMLMetadata{}, err
	}
	both := func(ja, en string) config.Localized { return config.Localized{JA: ja, EN: en} }
	return config.SAMLMetadata{
		DisplayName:         both("デモ大学 認証システム", "Demo University Login"),
		Description:         both("idp dev のデモ IdP です。", "The demo IdP of idp dev."),
		InformationURL:      both(baseURL+"/user/?lang=ja", baseURL+"/user/"),
		PrivacyStatementURL: both(baseURL+"/user/?lang=ja#privacy", baseURL+"/user/#privacy"),
		Logo:                config.SAMLLogo{URL: baseURL + "/static/logo.png", Width: 80, Height: 60},
		Organization: config.SAMLOrganization{
			Name:        both("デモ大学", "Demo University"),
			DisplayName: both("デモ大学", "Demo University"),
			URL:         both(baseURL+"/?lang=ja", baseURL+"/"),
		},
		Contacts: []config.SAMLContact{
			{Type: config.ContactTechnical, Name: "IdP operators", Email: "idp-admin@demo.example"},
			{Type: config.ContactSupport, Name: "Helpdesk", Email: "helpdesk@demo.example"},
			{Type: config.ContactSecurity, Name: "CSIRT", Email: "csirt@demo.example"},
		},
		ErrorURL:                baseURL + "/user/",
		EncryptionCertFile:      certFile,
		WantAuthnRequestsSigned: false,
	}, nil
}
