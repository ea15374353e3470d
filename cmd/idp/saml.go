package main

import (
	"context"
	"log/slog"

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
