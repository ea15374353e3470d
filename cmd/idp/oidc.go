package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/oidcprovider"
)

// newOIDC builds the OpenID Connect provider over the app's config, store
// and directory, as an embedding program does, and mounts it on app.
func newOIDC(ctx context.Context, app *idp.App, logger *slog.Logger) (*oidcprovider.Provider, error) {
	p, err := oidcprovider.New(ctx, oidcprovider.Options{App: app, Logger: logger})
	if err != nil {
		return nil, err
	}
	p.Mount(app)
	return p, nil
}

// devOIDCClient is the relying party `idp dev` registers, with a fresh
// secret, for trying the provider with any OIDC client on this machine.
func devOIDCClient() config.OIDCClient {
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	return config.OIDCClient{
		ID:                     "demo-app",
		Name:                   "Demo application",
		Secret:                 config.SecretValue(base64.RawURLEncoding.EncodeToString(secret)),
		RedirectURIs:           []string{"http://127.0.0.1:5555/callback", "http://localhost:5555/callback"},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:5555/", "http://localhost:5555/"},
		Scopes:                 []string{"openid", "profile", "email", "groups", "offline_access"},
	}
}

// printOIDCClients tells the developer how to point a relying party at
// `idp dev`.
func printOIDCClients(w io.Writer, baseURL string, clients []config.OIDCClient) {
	fmt.Fprintf(w, "  OIDC issuer:  %s  (%s/.well-known/openid-configuration)\n", baseURL, baseURL)
	for _, c := range clients {
		fmt.Fprintf(w, "    client_id %s  client_secret %s  (client_secret_basic, PKCE S256)\n", c.ID, c.Secret.Value())
		fmt.Fprintf(w, "    redirect_uri %s\n", strings.Join(c.RedirectURIs, " or "))
	}
	fmt.Fprintln(w)
}
