package idp

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/campusidp/campusidp/config"
)

// brandAssets are the branding served from config rather than from the
// templates: the logo file and a stylesheet with the configured colours.
type brandAssets struct {
	css      []byte
	logo     []byte
	logoType string
}

// brandCSS overrides the built-in sheet's colours. Validate allows only
// #rrggbb values, so nothing but a colour reaches the sheet.
var brandCSS = template.Must(template.New("brand.css").Parse(`/* From branding.colors in the configuration. */
header.top { background: {{.Header}}; }
a, details.recovery summary, details.menu a, details.menu .linklike { color: {{.Accent}}; }
button, .secondary button, .stack > button:not(.primary) { color: {{.Accent}}; border-color: {{.Accent}}; }
button.primary, a.button { background: {{.Accent}}; color: #fff; }
.tab.active { border-bottom-color: {{.Accent}}; }
`))

func loadBrandAssets(b config.Branding) (*brandAssets, error) {
	var css bytes.Buffer
	if err := brandCSS.Execute(&css, b.Colors); err != nil {
		return nil, err
	}
	a := &brandAssets{css: css.Bytes()}
	if b.LogoFile != "" {
		data, err := os.ReadFile(b.LogoFile)
		if err != nil {
			return nil, fmt.Errorf("idp: branding.logo_file: %w", err)
		}
		if len(data) > config.MaxLogoBytes {
			return nil, fmt.Errorf("idp: branding.logo_file is larger than %d bytes", config.MaxLogoBytes)
		}
		a.logo = data
		a.logoType = config.LogoTypes[strings.ToLower(filepath.Ext(b.LogoFile))]
	}
	return a, nil
}

func (a *App) routeBrand(mux *http.ServeMux) {
	serve := func(body []byte, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "public, max-age=3600")
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("GET /brand/style.css", serve(a.brand.css, "text/css; charset=utf-8"))
	if a.brand.logo != nil {
		mux.HandleFunc("GET /brand/logo", serve(a.brand.logo, a.brand.logoType))
	}
}
