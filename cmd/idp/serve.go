package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/admin"
	"github.com/campusidp/campusidp/idp/consent"
	"github.com/campusidp/campusidp/idp/oidcprovider"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/idp/securitykeys"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/mail"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// loadWithFlags parses a command's flags, adding -config, and loads that
// file. A non-zero code is the exit code to stop with.
func loadWithFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (config.Config, string, int) {
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/idp/config.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, "", 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigErrors(stderr, *path, err)
		return cfg, *path, 1
	}
	return cfg, *path, 0
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, _, code := loadWithFlags(flag.NewFlagSet("serve", flag.ContinueOnError), args, stderr)
	if code != 0 {
		return code
	}
	logger := newLogger(cfg.Log, stderr)
	// Libraries that log through slog's default (zitadel/oidc) then write
	// the same JSON lines as the IdP.
	slog.SetDefault(logger)
	for _, w := range cfg.Warnings() {
		logger.Warn("config warning", "warning", w)
	}
	if err := serve(ctx, &cfg, logger, nil, nil); err != nil {
		logger.Error("idp stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if strings.EqualFold(c.Format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// extras are what `idp dev` adds to the production wiring.
type extras struct {
	// outbox replaces SMTP: mails are kept in memory and listed at /dev/outbox.
	outbox *mail.Outbox
	// ready, when set, is told the listening address once the server accepts.
	ready func(addr string)
	// endDelay, when closed, ends server.shutdown_delay early (tests).
	endDelay <-chan struct{}
}

// newSender builds the configured mail transport.
func newSender(cfg *config.Config, logger *slog.Logger) (mail.Sender, error) {
	if cfg.Mail.Transport == config.TransportLog {
		// Mails are logged without their bodies (codes never reach logs) and
		// kept in memory; meant for trials, not for users.
		return mail.NewOutbox(100, logger), nil
	}
	c := cfg.Mail.SMTP
	return mail.NewSMTP(mail.SMTPConfig{
		Host:     c.Host,
		Port:     c.Port,
		TLS:      c.TLS,
		Username: c.Username,
		Password: c.Password.Value(),
		Timeout:  c.Timeout,
		From:     cfg.Mail.From,
		FromName: bilingual(cfg.Mail.FromName),
	}, logger)
}

// bilingual joins the two languages of a setting as "日本語 / English",
// or gives the one that is set.
func bilingual(l config.Localized) string {
	switch {
	case l.JA != "" && l.EN != "":
		return l.JA + " / " + l.EN
	case l.JA != "":
		return l.JA
	}
	return l.EN
}

func openStore(ctx context.Context, c config.Store, logger *slog.Logger) (*store.DB, error) {
	switch c.Driver {
	case "", "sqlite":
		return store.OpenSQLite(ctx, c.DSN.Value(), logger)
	case config.StorePostgres:
		return store.OpenPostgres(ctx, c.DSN.Value(), logger)
	default:
		return nil, fmt.Errorf("store.driver %q is not supported by this build", c.Driver)
	}
}

// instance is a wired IdP: the app and what it holds open.
type instance struct {
	app *idp.App
	db  *store.DB
	dir *ldapstore.Directory
	// metrics is nil when metrics.enabled is false; redis is nil unless
	// sessions live in Redis; ready answers /readyz.
	metrics *metrics.Metrics
	redis   *store.RedisSessions
	ready   *readiness
	// saml is the SAML identity provider; nil when saml.enabled is false.
	saml *samlprovider.Provider
	oidc *oidcprovider.Provider
}

func (in *instance) Close() {
	_ = in.dir.Close()
	_ = in.db.Close()
	if in.redis != nil {
		_ = in.redis.Close()
	}
}

// groupsChecker is the directory's one start-up look at group membership.
type groupsChecker interface {
	CheckGroups(ctx context.Context) error
}

var _ groupsChecker = (*ldapstore.Directory)(nil)

// checkDirectoryGroups warns when ldap.groups.mode is memberof but no entry
// carries the attribute (stock OpenLDAP has no memberof overlay): staff
// would silently lose the console. One search, bounded so that a directory
// that does not answer delays the start by seconds at most; an outage is
// not reported here (readiness does that).
func checkDirectoryGroups(ctx context.Context, dir groupsChecker, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := dir.CheckGroups(ctx); errors.Is(err, ldapstore.ErrNoMemberOf) {
		logger.WarnContext(ctx, "ldap.groups.mode: memberof, but no entry under ldap.user_base_dn carries the group attribute, "+
			"so no one is in any group and staff cannot reach the console: enable the directory's memberof overlay "+
			"(OpenLDAP: olcOverlay=memberof, then re-add the group members) or set ldap.groups.mode: search")
	}
}

// build wires store, directory, mail and app from the config.
func build(ctx context.Context, cfg *config.Config, logger *slog.Logger, ex *extras) (*instance, error) {
	db, err := openStore(ctx, cfg.Store, logger)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	dir, err := ldapstore.New(idp.LDAPConfig(cfg), logger)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ldap: %w", err)
	}
	in := &instance{db: db, dir: dir, metrics: newMetrics(cfg, db, dir)}
	checkDirectoryGroups(ctx, dir, logger)
	sessions, err := openSessions(ctx, cfg, db, logger)
	if err != nil {
		in.Close()
		return nil, err
	}
	in.redis = sessions.redis
	in.ready = in.newReadiness(logger)
	opts := idp.Options{
		Config:    cfg,
		Directory: observedDirectory{dir, in.metrics},
		Store:     sessions.store,
		Sessions:  sessions.sessions,
		Logger:    logger,
		Metrics:   in.metrics,
	}
	var sender mail.Sender
	if ex != nil && ex.outbox != nil {
		sender = ex.outbox
		opts.DevOutbox = outboxView{ex.outbox}
	} else if sender, err = newSender(cfg, logger); err != nil {
		in.Close()
		return nil, err
	}
	opts.Mailer = idp.MailerFunc(func(ctx context.Context, m idp.Mail) error {
		err := sender.Send(ctx, mail.Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
		in.metrics.MailSent(mailResult(err))
		return err
	})
	if in.app, err = idp.New(opts); err != nil {
		in.Close()
		return nil, err
	}
	in.app.Handle("GET /readyz", in.ready)
	if err := admin.Mount(in.app, logger); err != nil {
		in.Close()
		return nil, err
	}
	if _, err := consent.Mount(in.app, logger); err != nil {
		in.Close()
		return nil, err
	}
	if _, err := securitykeys.Mount(securitykeys.Options{App: in.app, Store: db, Logger: logger}); errors.Is(err, securitykeys.ErrNoDomain) {
		logger.WarnContext(ctx, "security keys are off: server.public_url has an IP address, and browsers need a host name for them")
	} else if err != nil {
		in.Close()
		return nil, err
	}
	if in.saml, err = newSAML(ctx, in.app, logger); err != nil {
		in.Close()
		return nil, err
	}
	if in.oidc, err = newOIDC(ctx, in.app, logger); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

// serve runs the IdP until ctx ends, then drains requests within the
// configured shutdown timeout.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, ex *extras, ln net.Listener) error {
	in, err := build(ctx, cfg, logger, ex)
	if err != nil {
		return err
	}
	defer in.Close()
	app, db := in.app, in.db

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Server.Listen)
		if err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           app.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	go collectGarbage(gcCtx, db, cfg.Audit.Retention, logger)
	if in.saml != nil {
		go in.saml.Run(gcCtx)
	}
	go in.oidc.Run(gcCtx)

	stopProfiling, err := startProfiling(os.Getenv(pprofEnv), logger)
	if err != nil {
		return err
	}
	defer stopProfiling()
	stopOps, err := startOps(cfg, in.opsHandler(in.ready), logger)
	if err != nil {
		return err
	}
	defer stopOps()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("idp listening", "addr", ln.Addr().String(), "public_url", cfg.Server.PublicURL, "version", versionString())
	if ex != nil && ex.ready != nil {
		ex.ready(ln.Addr().String())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Tell the load balancer first: /readyz fails from now on, while the
	// listener keeps serving whatever still arrives.
	in.ready.drain()
	logger.Info("idp shutting down: not ready, still serving", "delay", cfg.Server.ShutdownDelay)
	var endDelay <-chan struct{}
	if ex != nil {
		endDelay = ex.endDelay
	}
	delay := time.NewTimer(cfg.Server.ShutdownDelay)
	select {
	case <-delay.C:
	case <-endDelay:
		delay.Stop()
	}
	logger.Info("idp shutting down", "timeout", cfg.Server.ShutdownTimeout)
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	cfg, path, code := loadWithFlags(flag.NewFlagSet("check-config", flag.ContinueOnError), args, stderr)
	if code != 0 {
		return code
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "%s: warning: %s\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: OK\n", path)
	return 0
}

func printConfigErrors(w io.Writer, path string, err error) {
	lines := config.Describe(err)
	fmt.Fprintf(w, "%s: %d problem(s):\n", path, len(lines))
	for _, l := range lines {
		fmt.Fprintf(w, "  - %s\n", l)
	}
}
