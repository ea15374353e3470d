// Command campusembed shows how a Go program outside the project embeds the
// campus IdP: its own directory (directory.go) and mailer (mailer.go), the
// public SQLite store, the login pages and the OpenID Connect front-end on
// one handler. It imports only public packages.
//
//	go run . -listen 127.0.0.1:8080
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/store"
)

// Server is the embedded IdP: the app with the OIDC provider mounted.
type Server struct {
	App      *idp.App
	Provider *oidcprovider.Provider
	DB       *store.DB
}

// Close releases the store.
func (s *Server) Close() error { return s.DB.Close() }

// NewServer wires the IdP for publicURL, keeping its state in dbPath.
// clients are the relying parties allowed to log users in.
func NewServer(ctx context.Context, publicURL, dbPath, secret string, dir idp.Directory, mailer idp.Mailer,
	clients []config.OIDCClient, logger *slog.Logger) (*Server, error) {
	cfg := config.Default()
	cfg.Server.PublicURL = publicURL
	cfg.Security.SecretKey = config.SecretValue(secret)
	cfg.Branding.OrgName = config.Localized{JA: "例示大学", EN: "Example College"}
	cfg.OIDC.Clients = clients
	// Only what this program takes from the config is checked: no ldap,
	// mail or store section is needed, because it brings those itself.
	if err := cfg.Validate(config.Embedded...); err != nil {
		return nil, err
	}

	db, err := store.OpenSQLite(ctx, dbPath, logger)
	if err != nil {
		return nil, err
	}
	app, err := idp.New(idp.Options{
		Config:    &cfg,
		Directory: dir,
		Mailer:    mailer,
		Store:     db,
		Sessions:  db.SessionStore(),
		Logger:    logger,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	provider, err := oidcprovider.New(ctx, oidcprovider.Options{App: app, Logger: logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	provider.Mount(app)
	return &Server{App: app, Provider: provider, DB: db}, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on (loopback: the issuer is http)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := run(ctx, *listen, logger); err != nil {
		logger.Error("campusembed stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "campusembed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)

	base := "http://" + ln.Addr().String()
	srv, err := NewServer(ctx, base, filepath.Join(dir, "idp.db"), hex.EncodeToString(secret),
		NewDirectory(), &Mailer{log: os.Stdout}, nil, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	go srv.Provider.Run(ctx)

	fmt.Printf("campusembed: %s/user/ (hanako / sakura-2026); mails are printed here\n", base)
	hs := &http.Server{Handler: srv.App.Handler()}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
