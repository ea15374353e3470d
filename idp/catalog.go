package idp

import (
	"fmt"
	"html/template"
	"io/fs"

	"gopkg.in/yaml.v3"
)

// Message is one catalog entry: the same text in Japanese and English.
type Message struct {
	JA string `yaml:"ja"`
	EN string `yaml:"en"`
}

// Catalog maps message keys to their bilingual text.
type Catalog map[string]Message

func loadCatalog(fsys fs.FS, name string) (Catalog, error) {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("message catalog: %w", err)
	}
	var c Catalog
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("message catalog %s: %w", name, err)
	}
	for k, m := range c {
		if m.JA == "" || m.EN == "" {
			return nil, fmt.Errorf("message catalog %s: key %q needs both ja and en", name, k)
		}
	}
	return c, nil
}

// lookup fails loudly for unknown keys so that a typo in a template is an
// error in the template tests, not a blank line on a page.
func (c Catalog) lookup(key string) (Message, error) {
	m, ok := c[key]
	if !ok {
		return Message{}, fmt.Errorf("message catalog: unknown key %q", key)
	}
	return m, nil
}

func (c Catalog) funcs() template.FuncMap {
	return template.FuncMap{
		"t": c.lookup,
		"t_ja": func(key string) (string, error) {
			m, err := c.lookup(key)
			return m.JA, err
		},
		"t_en": func(key string) (string, error) {
			m, err := c.lookup(key)
			return m.EN, err
		},
	}
}

// Message returns the catalog's text for key (the app's catalog, with any
// overrides), for pages that choose words at run time, such as the
// console's audit event words; ok is false for an unknown key.
func (a *App) Message(key string) (m Message, ok bool) {
	m, ok = a.pages.catalog[key]
	return m, ok
}
