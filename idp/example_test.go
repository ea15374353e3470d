package idp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/store"
)

// A program embeds the IdP with its own directory and mailer: two users in
// memory, and mails printed instead of sent. It serves the pages, and a
// user signs in with a password and a code from the mail.
func Example_embed() {
	ctx := context.Background()

	cfg := config.Default()
	cfg.Security.SecretKey = config.SecretValue("an example secret of at least 32 bytes, from a file in real life")

	path, cleanup := tempDB()
	defer cleanup()
	db, err := store.OpenSQLite(ctx, path, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()

	// The public URL is where browsers reach the IdP.
	srv := httptest.NewUnstartedServer(nil)
	cfg.Server.PublicURL = "http://" + srv.Listener.Addr().String()

	mail := &mailbox{out: os.Stdout}
	app, err := idp.New(idp.Options{
		Config:    &cfg,
		Directory: twoUsers(), // an idp.Directory: Authenticate and Lookup
		Mailer:    mail,       // an idp.Mailer: Send
		Store:     db,
		Sessions:  db.SessionStore(),
	})
	if err != nil {
		panic(err)
	}
	srv.Config.Handler = app.Handler()
	srv.Start()
	defer srv.Close()

	b := newWebBrowser(srv.URL)
	if err := b.signIn("/user/", "alice", "correct horse", mail, "alice@mail.example.net"); err != nil {
		panic(err)
	}
	if err := b.get("/user/"); err != nil {
		panic(err)
	}
	fmt.Println("account page:", strings.TrimPrefix(b.url, srv.URL), strings.Contains(b.last, "Alice Example"))
	// Output:
	// mail to alice@mail.example.net: ワンタイムパスワードのお知らせ / Notification of one time password
	// account page: /user/ true
}

// The OpenID Connect front-end mounts on the app and takes the app's
// config, store and directory; relying parties are listed in the config.
func Example_oidc() {
	ctx := context.Background()

	cfg := config.Default()
	cfg.Security.SecretKey = config.SecretValue("an example secret of at least 32 bytes, from a file in real life")
	cfg.OIDC.Clients = []config.OIDCClient{{
		ID:           "wiki",
		Secret:       config.SecretValue("a client secret of the wiki, 32+ bytes long"),
		RedirectURIs: []string{"https://wiki.example.ac.jp/callback"},
		Scopes:       []string{"openid", "profile", "email"},
	}}

	path, cleanup := tempDB()
	defer cleanup()
	db, err := store.OpenSQLite(ctx, path, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()

	// The issuer is the public URL: https, or http on the loopback interface.
	srv := httptest.NewUnstartedServer(nil)
	cfg.Server.PublicURL = "http://" + srv.Listener.Addr().String()
	app, err := idp.New(idp.Options{Config: &cfg, Directory: twoUsers(), Mailer: &mailbox{},
		Store: db, Sessions: db.SessionStore()})
	if err != nil {
		panic(err)
	}
	provider, err := oidcprovider.New(ctx, oidcprovider.Options{App: app})
	if err != nil {
		panic(err)
	}
	provider.Mount(app)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go provider.Run(runCtx) // rotates signing keys, removes expired tokens

	srv.Config.Handler = app.Handler()
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var discovery struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&discovery); err != nil {
		panic(err)
	}
	fmt.Println(discovery.Issuer == cfg.Server.PublicURL, strings.TrimPrefix(discovery.TokenEndpoint, srv.URL))
	// Output: true /oauth/token
}
