package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/internal/devldap"
	"github.com/campusidp/campusidp/mail"
)

// cmdDev runs the IdP with everything embedded: an in-process LDAP directory
// with demo accounts, SQLite in a temporary directory and an in-memory mail
// outbox. It is for trying the IdP out and for development, never production.
func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(url string)) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	cfg := config.Default()
	cfg.Log.Format = "text"
	logger := newLogger(cfg.Log, stderr)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "idp dev: %v\n", err)
		return 1
	}
	baseURL := devBaseURL(ln.Addr())

	dir, err := os.MkdirTemp("", "idp-dev-")
	if err != nil {
		fmt.Fprintf(stderr, "idp dev: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	ldapSrv, err := devldap.Start(ctx, "127.0.0.1:0", logger)
	if err != nil {
		fmt.Fprintf(stderr, "idp dev: starting demo directory: %v\n", err)
		return 1
	}
	defer ldapSrv.Close()

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg.Server.Listen = ln.Addr().String()
	cfg.Server.PublicURL = baseURL
	cfg.Server.ShutdownDelay = 0 // no load balancer to tell
	cfg.Security.SecretKey = config.SecretValue(hex.EncodeToString(secret))
	cfg.Store.Driver = "sqlite"
	cfg.Store.DSN = config.SecretValue(filepath.Join(dir, "idp.db"))
	cfg.LDAP.URLs = []string{ldapSrv.URL()}
	cfg.LDAP.BindDN = devldap.ServiceDN
	cfg.LDAP.BindPassword = config.SecretValue(devldap.ServicePassword)
	cfg.LDAP.UserBaseDN = "ou=people," + devldap.BaseDN
	cfg.LDAP.DisabledFilter = "(employeeType=disabled)"
	cfg.LDAP.Groups.Mode = "memberof"
	cfg.Mail.Transport = "log"
	// SAML with a key generated on first start and kept in the store.
	cfg.SAML.Enabled = true
	cfg.SAML.Signing.Generate = true
	cfg.SAML.Scope = "demo.example"
	if cfg.SAML.Metadata, err = devSAMLMetadata(dir, baseURL); err != nil {
		fmt.Fprintf(stderr, "idp dev: %v\n", err)
		return 1
	}
	cfg.OIDC.Clients = append(cfg.OIDC.Clients, devOIDCClient())
	// The login page shows the manual's "Forgot your password?" and "Need
	// Help?" only with these set; dev fills them with placeholders.
	if cfg.Branding.ForgotPasswordURL == "" {
		cfg.Branding.ForgotPasswordURL = "https://help.example.org/password"
	}
	if cfg.Branding.HelpURL == "" {
		cfg.Branding.HelpURL = "https://help.example.org/"
	}
	if cfg.Mail.From == "" {
		cfg.Mail.From = "idp-dev@localhost.localdomain"
	}
	if err := cfg.Validate(); err != nil {
		printConfigErrors(stderr, "dev defaults", err)
		return 1
	}

	outbox := mail.NewOutbox(100, logger)
	fmt.Fprintf(stdout, "\nidp dev is running (embedded directory, storage in %s, mail kept in memory)\n\n", dir)
	fmt.Fprintf(stdout, "  Log in:       %s/user/\n", baseURL)
	fmt.Fprintf(stdout, "  Dev outbox:   %s/dev/outbox\n", baseURL)
	fmt.Fprintf(stdout, "  SAML IdP:     %s/saml/metadata\n\n", baseURL)
	printOIDCClients(stdout, baseURL, cfg.OIDC.Clients)
	fmt.Fprintln(stdout, "  Demo accounts (ID / password):")
	for _, acct := range devldap.DemoAccounts() {
		fmt.Fprintf(stdout, "    %-12s %-22s %s\n", acct.ID, acct.Password, acct.Note)
	}
	fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")

	ex := &extras{outbox: outbox}
	if ready != nil {
		ex.ready = func(string) { ready(baseURL) }
	}
	if err := serve(ctx, &cfg, logger, ex, ln); err != nil {
		logger.Error("idp dev stopped", "error", err)
		return 1
	}
	return 0
}

// devBaseURL is the URL dev prints and serves as server.public_url. A
// loopback or unspecified listen address is named "localhost": browsers take
// no IP address as a WebAuthn relying-party ID, and localhost counts as a
// secure context over http, so security keys work in dev too.
func devBaseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// outboxView adapts the mail outbox to the page that lists it.
type outboxView struct{ o *mail.Outbox }

func (v outboxView) Messages() []idp.OutboxMessage {
	var out []idp.OutboxMessage
	for _, m := range v.o.Messages() {
		out = append(out, idp.OutboxMessage{Time: m.Time, To: m.To, Subject: m.Subject, Text: m.Text})
	}
	return out
}
