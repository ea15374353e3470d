package idp_test

import (
	"context"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"gopkg.in/yaml.v3"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/store"
	"github.com/campusidp/campusidp/templates"
)

// noDirectory is never asked: these tests only build the app.
type noDirectory struct{}

func (noDirectory) Authenticate(context.Context, string, string) (*ldapstore.User, error) {
	return nil, ldapstore.ErrDirectoryUnavailable
}

func (noDirectory) Lookup(context.Context, string) (*ldapstore.User, error) {
	return nil, ldapstore.ErrDirectoryUnavailable
}

// copyFS copies the embedded templates, leaving out the named files.
func copyFS(t *testing.T, leaveOut ...string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(templates.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, l := range leaveOut {
			if path == l {
				return nil
			}
		}
		data, err := fs.ReadFile(templates.FS, path)
		out[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStartFailsWithoutATemplateOrMessage(t *testing.T) {
	db, err := store.OpenSQLite(t.Context(), t.TempDir()+"/idp.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := config.Default()
	cfg.Server.PublicURL = "http://127.0.0.1"
	cfg.Security.SecretKey = config.SecretValue(strings.Repeat("k", 32))
	newApp := func(fsys fs.FS) error {
		_, err := idp.New(idp.Options{Config: &cfg, Directory: noDirectory{}, Store: db, Sessions: db.SessionStore(),
			Mailer: idp.MailerFunc(nil), Templates: fsys})
		return err
	}
	if err := newApp(copyFS(t)); err != nil {
		t.Fatalf("complete templates refused: %v", err)
	}
	for _, missing := range []string{"pages/login.html", "pages/mfa_email.html", "pages/reset_code.html", "mail/otp.txt", "messages.yaml"} {
		t.Run(missing, func(t *testing.T) {
			if err := newApp(copyFS(t, missing)); err == nil {
				t.Fatalf("started without %s", missing)
			}
		})
	}
}

// TestEveryCatalogKeyUsedExists scans the pages for message keys, so a typo
// fails here rather than on a page nobody's test visits.
func TestEveryCatalogKeyUsedExists(t *testing.T) {
	raw, err := fs.ReadFile(templates.FS, "messages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var catalog map[string]struct{ JA, EN string }
	if err := yaml.Unmarshal(raw, &catalog); err != nil {
		t.Fatal(err)
	}
	keyRe := regexp.MustCompile(`\(?t(?:_ja|_en)? "([a-z0-9_.]+)"`)
	pages, _ := fs.Glob(templates.FS, "pages/*.html")
	found := 0
	for _, p := range pages {
		src, _ := fs.ReadFile(templates.FS, p)
		for _, m := range keyRe.FindAllStringSubmatch(string(src), -1) {
			found++
			if _, ok := catalog[m[1]]; !ok {
				t.Errorf("%s uses unknown message key %q", p, m[1])
			}
		}
	}
	if found < 50 {
		t.Fatalf("only %d keys found: the scan is broken", found)
	}
}
