package ldapstore

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

const (
	idPlaceholder = "{id}"
	dnPlaceholder = "{dn}"
)

// userFilter substitutes the escaped login ID into the configured filter.
// Only the template's own placeholder is replaced, so an ID containing
// "{id}" stays literal.
func userFilter(template, id string) string {
	return strings.Replace(template, idPlaceholder, ldap.EscapeFilter(id), 1)
}

// groupFilter substitutes the escaped user DN into the group filter.
func groupFilter(template, dn string) string {
	return strings.ReplaceAll(template, dnPlaceholder, ldap.EscapeFilter(dn))
}

// validID reports whether id may be sent to the directory at all. Control
// characters and broken UTF-8 have no place in a campus ID and would only
// serve to confuse filters, logs or the server.
func validID(id string) bool {
	if id == "" || len(id) > maxIDBytes || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// groupNameFromDN returns the value of the first RDN of a group DN, e.g.
// "students" for "cn=students,ou=groups,dc=example".
func groupNameFromDN(dn string) (string, bool) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 || len(parsed.RDNs[0].Attributes) == 0 {
		return "", false
	}
	name := parsed.RDNs[0].Attributes[0].Value
	return name, name != ""
}

// sortedUnique sorts names and drops duplicates, so callers can compare
// group lists regardless of directory order.
func sortedUnique(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	out := names[:1]
	for _, n := range names[1:] {
		if n != out[len(out)-1] {
			out = append(out, n)
		}
	}
	return out
}
