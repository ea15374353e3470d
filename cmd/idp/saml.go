package main

import (
	"context"
	"log/slog"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
)

// withSAMLAttributes adds the directory attributes the SAML attribute
// mapping reads to the ones the directory client fetches at login.
func withSAMLAttributes(lc ldapstore.Config, c config.SAML) ldapstore.Config {
	return withExtraAttributes(lc, c.DirectoryAttributes())
}

// newSAML mounts the SAML identity provider on app when it is enabled.
func newSAML(ctx context.Context, cfg *config.Config, app *idp.App, db *store.DB, logger *slog.Logger) (*samlprovider.Provider, error) {
	if !cfg.SAML.Enabled {
		return nil, nil
	}
	return samlprovider.New(ctx, app, samlprovider.Options{Config: cfg, Store: db, Logger: logger})
}
