package devldap

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// attrDesc is a parsed attribute description such as "displayName;lang-ja":
// the type (lower-cased, aliases resolved) and its options (lower-cased,
// sorted, without duplicates).
type attrDesc struct {
	typ     string
	options []string
}

// typeAliases maps alternative names of standard attribute types to the
// short name we store, so "(commonName=x)" finds entries written with "cn".
var typeAliases = map[string]string{
	"commonname":             "cn",
	"surname":                "sn",
	"gn":                     "givenname",
	"userid":                 "uid",
	"rfc822mailbox":          "mail",
	"organizationname":       "o",
	"organizationalunitname": "ou",
	"domaincomponent":        "dc",
}

func parseAttrDesc(s string) (attrDesc, error) {
	parts := strings.Split(s, ";")
	typ := strings.ToLower(parts[0])
	if !validDescriptor(typ, true) {
		return attrDesc{}, fmt.Errorf("invalid attribute type %q", parts[0])
	}
	if alias, ok := typeAliases[typ]; ok {
		typ = alias
	}
	d := attrDesc{typ: typ}
	for _, o := range parts[1:] {
		o = strings.ToLower(o)
		if !validDescriptor(o, false) {
			return attrDesc{}, fmt.Errorf("invalid attribute option %q in %q", o, s)
		}
		if !slices.Contains(d.options, o) {
			d.options = append(d.options, o)
		}
	}
	slices.Sort(d.options)
	return d, nil
}

// validDescriptor reports whether s is a keystring (RFC 4512) or, when
// allowOID is set, a numeric OID.
func validDescriptor(s string, allowOID bool) bool {
	if s == "" {
		return false
	}
	if allowOID && s[0] >= '0' && s[0] <= '9' {
		for _, c := range s {
			if (c < '0' || c > '9') && c != '.' {
				return false
			}
		}
		return !strings.HasSuffix(s, ".") && !strings.Contains(s, "..")
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// covers reports whether the description d (from a filter or an attribute
// list) selects the stored attribute a: same type, and every option of d
// present on a. So "displayName" covers "displayName;lang-ja" but not the
// other way round (RFC 4512 section 2.5).
func (d attrDesc) covers(a attrDesc) bool {
	if d.typ != a.typ {
		return false
	}
	for _, o := range d.options {
		if !slices.Contains(a.options, o) {
			return false
		}
	}
	return true
}

func (d attrDesc) equal(o attrDesc) bool {
	return d.typ == o.typ && slices.Equal(d.options, o.options)
}

// attribute is one attribute description of an entry with its values, in
// the spelling and order of the LDIF.
type attribute struct {
	name   string
	desc   attrDesc
	values []string
}

type entry struct {
	dn      string
	rdnKeys []string // normalized RDNs, leaf first
	attrs   []attribute
}

func (e *entry) key() string { return strings.Join(e.rdnKeys, ",") }

// values returns every value of the attributes covered by d.
func (e *entry) values(d attrDesc) []string {
	var out []string
	for _, a := range e.attrs {
		if d.covers(a.desc) {
			out = append(out, a.values...)
		}
	}
	return out
}

func (e *entry) has(d attrDesc) bool {
	for _, a := range e.attrs {
		if d.covers(a.desc) {
			return true
		}
	}
	return false
}

// inScope reports whether e lies in the search scope below base.
func (e *entry) inScope(base *entry, scope int64) bool {
	n, b := len(e.rdnKeys), len(base.rdnKeys)
	if n < b || !slices.Equal(e.rdnKeys[n-b:], base.rdnKeys) {
		return false
	}
	switch scope {
	case scopeBase:
		return n == b
	case scopeOne:
		return n == b+1
	case scopeSub:
		return true
	case scopeChildren:
		return n > b
	}
	return false
}

// Search scopes: RFC 4511 plus the subordinate-subtree extension
// (draft-sermersheim-ldap-subordinate-scope) that some clients send.
const (
	scopeBase     = 0
	scopeOne      = 1
	scopeSub      = 2
	scopeChildren = 3
)

// directory is the immutable in-memory tree. It is never written after
// loading, so handlers read it without locks.
type directory struct {
	entries []*entry // LDIF order, which also makes paging stable
	byKey   map[string]*entry
	known   map[string]bool // attribute types the server "recognizes" (for filter Undefined)
}

// standardTypes are recognized even when no demo entry uses them, so a filter
// on, say, telephoneNumber is FALSE rather than Undefined.
var standardTypes = []string{
	"objectclass", "cn", "sn", "givenname", "displayname", "uid", "mail", "member",
	"uniquemember", "memberof", "description", "ou", "o", "dc", "employeetype",
	"employeenumber", "userpassword", "telephonenumber", "title", "manager", "seealso",
	"owner", "initials", "preferredlanguage", "uidnumber", "gidnumber", "homedirectory",
	"loginshell", "edupersonprincipalname", "edupersonaffiliation", "labeleduri",
	"postaladdress", "l", "st", "c", "street", "postalcode",
	"namingcontexts", "supportedldapversion", "vendorname", "vendorversion",
	"supportedextension", "supportedcontrol", "subschemasubentry",
}

func (d *directory) lookup(dn string) (*entry, error) {
	keys, err := normalizeDN(dn)
	if err != nil {
		return nil, err
	}
	return d.byKey[strings.Join(keys, ",")], nil
}

// closestAncestor returns the DN of the deepest existing entry above the
// normalized DN keys, for the matchedDN of a noSuchObject answer.
func (d *directory) closestAncestor(keys []string) string {
	for i := 1; i < len(keys); i++ {
		if e, ok := d.byKey[strings.Join(keys[i:], ",")]; ok {
			return e.dn
		}
	}
	return ""
}

// normalizeDN returns the RDNs of dn in a canonical form (lower-cased types
// and values, insignificant spaces removed, multi-valued RDNs sorted), leaf
// first, so two spellings of one DN compare equal.
func normalizeDN(dn string) ([]string, error) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(parsed.RDNs))
	for _, rdn := range parsed.RDNs {
		avas := make([]string, 0, len(rdn.Attributes))
		for _, ava := range rdn.Attributes {
			desc, err := parseAttrDesc(ava.Type)
			if err != nil || len(desc.options) > 0 {
				return nil, fmt.Errorf("invalid attribute type %q in DN", ava.Type)
			}
			avas = append(avas, desc.typ+"="+ldap.EscapeDN(foldValue(ava.Value)))
		}
		slices.Sort(avas)
		keys = append(keys, strings.Join(avas, "+"))
	}
	return keys, nil
}

// foldValue prepares a directory string for caseIgnoreMatch: leading and
// trailing spaces dropped, inner runs of spaces collapsed, case folded.
func foldValue(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// parseLDIF reads the content records of an RFC 2849 LDIF file. Change
// records and URL values are refused: the demo data never needs them.
func parseLDIF(data []byte, suffix string) (*directory, error) {
	suffixKeys, err := normalizeDN(suffix)
	if err != nil {
		return nil, fmt.Errorf("devldap: suffix %q: %w", suffix, err)
	}
	records, err := splitLDIFRecords(data)
	if err != nil {
		return nil, err
	}
	dir := &directory{byKey: map[string]*entry{}, known: map[string]bool{}}
	for _, t := range standardTypes {
		dir.known[t] = true
	}
	for i, rec := range records {
		if i == 0 && len(rec.lines) > 0 && strings.HasPrefix(strings.ToLower(rec.lines[0].text), "version:") {
			if strings.TrimSpace(rec.lines[0].text[len("version:"):]) != "1" {
				return nil, fmt.Errorf("devldap: ldif line %d: unsupported LDIF version", rec.lines[0].no)
			}
			rec.lines = rec.lines[1:]
			if len(rec.lines) == 0 {
				continue
			}
		}
		e, err := parseLDIFRecord(rec)
		if err != nil {
			return nil, err
		}
		if err := dir.add(e, suffixKeys); err != nil {
			return nil, fmt.Errorf("devldap: ldif line %d: %w", rec.lines[0].no, err)
		}
		for _, a := range e.attrs {
			dir.known[a.desc.typ] = true
		}
	}
	if _, ok := dir.byKey[strings.Join(suffixKeys, ",")]; !ok {
		return nil, fmt.Errorf("devldap: ldif has no entry for the suffix %q", suffix)
	}
	return dir, nil
}

func (d *directory) add(e *entry, suffixKeys []string) error {
	key := e.key()
	if _, dup := d.byKey[key]; dup {
		return fmt.Errorf("duplicate entry %q", e.dn)
	}
	n, s := len(e.rdnKeys), len(suffixKeys)
	if n < s || !slices.Equal(e.rdnKeys[n-s:], suffixKeys) {
		return fmt.Errorf("entry %q is outside the suffix", e.dn)
	}
	if n > s {
		if _, ok := d.byKey[strings.Join(e.rdnKeys[1:], ",")]; !ok {
			return fmt.Errorf("entry %q comes before its parent", e.dn)
		}
	}
	// The naming values must be present in the entry, as a real server insists.
	rdn, _ := ldap.ParseDN(e.dn)
	for _, ava := range rdn.RDNs[0].Attributes {
		desc, _ := parseAttrDesc(ava.Type)
		if !slices.ContainsFunc(e.values(desc), func(v string) bool { return foldValue(v) == foldValue(ava.Value) }) {
			return fmt.Errorf("entry %q lacks its naming value %s=%s", e.dn, ava.Type, ava.Value)
		}
	}
	for _, a := range e.attrs {
		if a.desc.typ != "userpassword" {
			continue
		}
		for _, v := range a.values {
			if err := checkStoredPassword(v); err != nil {
				return fmt.Errorf("entry %q: %w", e.dn, err)
			}
		}
	}
	d.entries = append(d.entries, e)
	d.byKey[key] = e
	return nil
}

type ldifLine struct {
	no   int
	text string
}

type ldifRecord struct{ lines []ldifLine }

// splitLDIFRecords unfolds continuation lines, drops comments and splits the
// input at blank lines.
func splitLDIFRecords(data []byte) ([]ldifRecord, error) {
	var (
		records   []ldifRecord
		current   ldifRecord
		inComment bool
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	no := 0
	for sc.Scan() {
		no++
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, " "):
			if inComment {
				continue
			}
			if len(current.lines) == 0 {
				return nil, fmt.Errorf("devldap: ldif line %d: continuation without a line to continue", no)
			}
			current.lines[len(current.lines)-1].text += line[1:]
		case strings.HasPrefix(line, "#"):
			inComment = true
		case line == "":
			inComment = false
			if len(current.lines) > 0 {
				records = append(records, current)
				current = ldifRecord{}
			}
		default:
			inComment = false
			current.lines = append(current.lines, ldifLine{no: no, text: line})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("devldap: reading ldif: %w", err)
	}
	if len(current.lines) > 0 {
		records = append(records, current)
	}
	return records, nil
}

func parseLDIFRecord(rec ldifRecord) (*entry, error) {
	e := &entry{}
	for i, l := range rec.lines {
		name, value, err := parseLDIFLine(l.text)
		if err != nil {
			return nil, fmt.Errorf("devldap: ldif line %d: %w", l.no, err)
		}
		if i == 0 {
			if !strings.EqualFold(name, "dn") {
				return nil, fmt.Errorf("devldap: ldif line %d: record does not start with dn", l.no)
			}
			keys, err := normalizeDN(value)
			if err != nil {
				return nil, fmt.Errorf("devldap: ldif line %d: dn %q: %w", l.no, value, err)
			}
			if len(keys) == 0 {
				return nil, fmt.Errorf("devldap: ldif line %d: empty dn", l.no)
			}
			e.dn, e.rdnKeys = value, keys
			continue
		}
		if strings.EqualFold(name, "changetype") || strings.EqualFold(name, "control") {
			return nil, fmt.Errorf("devldap: ldif line %d: change records are not supported", l.no)
		}
		desc, err := parseAttrDesc(name)
		if err != nil {
			return nil, fmt.Errorf("devldap: ldif line %d: %w", l.no, err)
		}
		idx := slices.IndexFunc(e.attrs, func(a attribute) bool { return a.desc.equal(desc) })
		if idx < 0 {
			e.attrs = append(e.attrs, attribute{name: name, desc: desc})
			idx = len(e.attrs) - 1
		}
		e.attrs[idx].values = append(e.attrs[idx].values, value)
	}
	return e, nil
}

func parseLDIFLine(line string) (name, value string, err error) {
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return "", "", errors.New("expected \"attribute: value\"")
	}
	name, rest := line[:i], line[i+1:]
	switch {
	case strings.HasPrefix(rest, ":"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimLeft(rest[1:], " "))
		if err != nil {
			return "", "", fmt.Errorf("attribute %s: bad base64 value: %w", name, err)
		}
		return name, string(raw), nil
	case strings.HasPrefix(rest, "<"):
		return "", "", fmt.Errorf("attribute %s: URL values are not supported", name)
	default:
		return name, strings.TrimLeft(rest, " "), nil
	}
}
