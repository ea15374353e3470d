package idp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// AuditSink receives every audit event after the store has kept it, for
// example to forward it to a SIEM. Record runs inside the
// request that caused the event, so it should hand the event off quickly
// (a buffered channel, a non-blocking client); its error is logged and does
// not fail the user's request, as for the store's own audit writes.
type AuditSink interface {
	Record(ctx context.Context, e store.AuditEvent) error
}

// AuditSinkFunc adapts a function to the AuditSink interface.
type AuditSinkFunc func(ctx context.Context, e store.AuditEvent) error

// Record calls f.
func (f AuditSinkFunc) Record(ctx context.Context, e store.AuditEvent) error { return f(ctx, e) }

// checkOptions reports what is missing or invalid in opts, all at once,
// and fills in the metrics from a registerer.
func checkOptions(opts *Options) error {
	var missing []string
	for _, o := range []struct {
		name   string
		absent bool
	}{
		{"Config", opts.Config == nil}, {"Directory", opts.Directory == nil}, {"Store", opts.Store == nil},
		{"Sessions", opts.Sessions == nil}, {"Mailer", opts.Mailer == nil},
	} {
		if o.absent {
			missing = append(missing, "Options."+o.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("idp: %s required; for Store and Sessions use store.OpenSQLite and its SessionStore, or your own store checked with storetest.Run",
			strings.Join(missing, ", "))
	}
	if err := opts.Config.Validate(config.Embedded...); err != nil {
		return fmt.Errorf("idp: config: %w", err)
	}
	if opts.Metrics == nil && opts.Registerer != nil {
		m, err := metrics.NewIn(opts.Registerer)
		if err != nil {
			return fmt.Errorf("idp: %w", err)
		}
		opts.Metrics = m
	}
	return nil
}

// Config returns the configuration the app runs with; front-ends read
// their sections from it. It must not be modified.
func (a *App) Config() *config.Config { return a.cfg }

// Directory returns the account directory the app was given.
func (a *App) Directory() Directory { return a.dir }

// Store returns the store the app was given. Front-ends that need more of
// it (oidcprovider.Store, samlprovider.Store) check for it with a type
// assertion; *store.DB has everything.
func (a *App) Store() Store { return a.store }

// recordAudit hands a stored event to the audit sink, if there is one.
func (a *App) recordAudit(ctx context.Context, e store.AuditEvent) {
	if a.sink == nil {
		return
	}
	if err := a.sink.Record(ctx, e); err != nil {
		a.log.ErrorContext(ctx, "audit sink failed", "request_id", requestID(ctx), "event", e.Type, "error", err)
	}
}

// LDAPConfig turns the ldap section of cfg into the directory client's
// settings, adding the attributes the OIDC claims, the OIDC subject and the
// SAML attribute mapping read, so that every front-end finds what it maps.
// A program using ldapstore with the config tree passes the result to
// ldapstore.New.
func LDAPConfig(cfg *config.Config) ldapstore.Config {
	c := cfg.LDAP
	lc := ldapstore.Config{
		URLs:               c.URLs,
		StartTLS:           c.StartTLS,
		CAFile:             c.CAFile,
		InsecureSkipVerify: c.InsecureSkipVerify,
		BindDN:             c.BindDN,
		BindPassword:       c.BindPassword.Value(),
		UserBaseDN:         c.UserBaseDN,
		UserFilter:         c.UserFilter,
		DisabledFilter:     c.DisabledFilter,
		Attributes: ldapstore.Attributes{
			ID:            c.Attributes.ID,
			DisplayName:   c.Attributes.DisplayName,
			DisplayNameJA: c.Attributes.DisplayNameJA,
			Mail:          c.Attributes.Mail,
			Extra:         append([]string(nil), c.Attributes.Extra...),
		},
		Groups: ldapstore.Groups{
			Mode:          c.Groups.Mode,
			Attribute:     c.Groups.Attribute,
			BaseDN:        c.Groups.BaseDN,
			Filter:        c.Groups.Filter,
			NameAttribute: c.Groups.NameAttribute,
		},
		PoolSize:         c.PoolSize,
		DialTimeout:      c.DialTimeout,
		OperationTimeout: c.OperationTimeout,
		IdleTimeout:      c.IdleTimeout,
	}
	names := cfg.SAML.DirectoryAttributes()
	if cfg.OIDC.SubjectAttribute != "" {
		names = append(names, cfg.OIDC.SubjectAttribute)
	}
	for _, cl := range cfg.OIDC.Claims {
		if attr, ok := cl.ClaimAttribute(); ok {
			names = append(names, attr)
		}
	}
	for _, name := range names {
		// Attribute names ignore case; fetch each once.
		if !slices.ContainsFunc(lc.Attributes.Extra, func(e string) bool { return strings.EqualFold(e, name) }) {
			lc.Attributes.Extra = append(lc.Attributes.Extra, name)
		}
	}
	return lc
}

// override lays the configured branding and the program's message
// overrides over the catalog. branding.system_name names the system on
// every page and mail (site.system).
func (c Catalog) override(b config.Branding, msgs map[string]Message) error {
	if b.SystemName.JA != "" && b.SystemName.EN != "" {
		c["site.system"] = Message{JA: b.SystemName.JA, EN: b.SystemName.EN}
	}
	var errs []error
	for key, m := range msgs {
		if _, ok := c[key]; !ok {
			errs = append(errs, fmt.Errorf("idp: Options.Messages: unknown catalog key %q", key))
			continue
		}
		if m.JA == "" || m.EN == "" {
			errs = append(errs, fmt.Errorf("idp: Options.Messages: key %q needs both ja and en", key))
			continue
		}
		c[key] = m
	}
	return errors.Join(errs...)
}
