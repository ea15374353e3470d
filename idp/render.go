package idp

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/campusidp/campusidp/config"
)

// pageNames lists every page the app renders; New fails if one is missing,
// so a broken build never reaches a user.
var pageNames = []string{"login", "user", "logged_out", "error", "dev_outbox",
	"mfa_email", "otp_settings", "reset_login", "reset_init", "reset_code", "continue", "mfa_app",
	"saml_post", "logout_confirm", "logout_walk"}

type renderer struct {
	pages   map[string]*template.Template
	catalog Catalog
	fsys    fs.FS
	base    *template.Template // the layout, cloned for each page
}

func newRenderer(fsys fs.FS, extraPages ...string) (*renderer, error) {
	catalog, err := loadCatalog(fsys, "messages.yaml")
	if err != nil {
		return nil, err
	}
	base, err := template.New("layout.html").Funcs(catalog.funcs()).ParseFS(fsys, "pages/layout.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	r := &renderer{pages: map[string]*template.Template{}, catalog: catalog, fsys: fsys, base: base}
	if err := r.add(append(append([]string{}, pageNames...), extraPages...)...); err != nil {
		return nil, err
	}
	return r, nil
}

// add parses pages/NAME.html for each name into a clone of the layout.
func (r *renderer) add(names ...string) error {
	for _, name := range names {
		clone, err := r.base.Clone()
		if err != nil {
			return err
		}
		page, err := clone.ParseFS(r.fsys, "pages/"+name+".html")
		if err != nil {
			return fmt.Errorf("templates: page %s: %w", name, err)
		}
		r.pages[name] = page
	}
	return nil
}

// view is what every page template receives.
type view struct {
	Brand  config.Branding
	User   *SessionUser // nil when nobody is signed in
	Staff  bool         // the user's groups give a console role (menu link)
	CSRF   string
	Error  string // catalog key of an error message, if any
	Notice string // catalog key of a success or status message, if any
	// LockedUntil says when a factor lock ends, shown with the error.
	LockedUntil string
	// SignOutOnly: nobody is signed in, but the browser is in the reset
	// flow, so the ☰ menu offers Logout alone (the manual's reset ⑬–⑭).
	SignOutOnly bool
	// Back and BackLabel (a catalog key), when set, are where an error
	// page leads instead of the user's own page.
	Back, BackLabel string
	// GetURL, set when a form POST answers with its page (an error), is
	// the GET address of the same screen: reload-safe.js puts it in the
	// address bar so a reload does not resubmit the form.
	GetURL string
	Data   any
}

// render writes the page to a buffer first so a template error never leaves
// a half-written page behind a 200 status.
func (r *renderer) render(w http.ResponseWriter, status int, name string, v view) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("templates: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("templates: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if v.GetURL != "" {
		// Only the app's own reload-safe.js; inline script stays forbidden.
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy+"; script-src 'self'")
	}
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}
