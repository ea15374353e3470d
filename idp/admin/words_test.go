package admin_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/campusidp/campusidp/templates"
)

// auditCallRe finds the event type of an audit write in Go source: the
// string literal after the context in audit, auditAs, auditSecurity and
// auditRequired calls (exported or not).
var auditCallRe = regexp.MustCompile(`\b(?:audit|auditAs|Audit|AuditAs|auditSecurity|AuditSecurity|auditRequired|AuditRequired)\((?:ctx|r\.Context\(\)), "([a-z0-9_]+)"`)

// TestEveryAuditTypeHasWords keeps the console readable: every event type
// the module writes has ja/en words in the catalog (audit.type.TYPE), so
// the helpdesk never reads a raw identifier. A new event type needs a
// line in templates/messages.yaml.
func TestEveryAuditTypeHasWords(t *testing.T) {
	raw, err := fs.ReadFile(templates.FS, "messages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var catalog map[string]struct{ JA, EN string }
	if err := yaml.Unmarshal(raw, &catalog); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "..")
	found := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "examples" || d.Name() == "bench" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range auditCallRe.FindAllStringSubmatch(string(src), -1) {
			found[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 30 {
		t.Fatalf("only %d event types found: the scan is broken", len(found))
	}
	for typ, path := range found {
		if _, ok := catalog["audit.type."+typ]; !ok {
			t.Errorf("event type %q (written in %s) has no words: add audit.type.%s to templates/messages.yaml", typ, path, typ)
		}
	}
}
