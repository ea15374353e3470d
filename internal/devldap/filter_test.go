package devldap

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// testLDIF adds entries with awkward values to the ones the demo data has.
const testLDIF = `dn: dc=t
objectClass: top
dc: t

dn: cn=back\5cslash,dc=t
objectClass: person
cn: back\slash
sn: a  b   c

dn: cn=star,dc=t
objectClass: person
cn: star
sn: *
description: (a)
uidNumber: 42

dn: cn=nul,dc=t
objectClass: person
cn: nul
sn:: YQBi
`

func mustParseLDIF(t *testing.T, data, suffix string) *directory {
	t.Helper()
	dir, err := parseLDIF([]byte(data), suffix)
	if err != nil {
		t.Fatalf("parseLDIF: %v", err)
	}
	return dir
}

// matchingIDs evaluates filter over every entry and returns the first RDN
// value of each match, e.g. "demo1".
func matchingIDs(t *testing.T, dir *directory, filterText string) []string {
	t.Helper()
	f, err := parseFilter(filterText)
	if err != nil {
		t.Fatalf("parseFilter(%q): %v", filterText, err)
	}
	var ids []string
	for _, e := range dir.entries {
		if f.eval(e, dir.known) == isTrue {
			dn, _ := ldap.ParseDN(e.dn)
			ids = append(ids, dn.RDNs[0].Attributes[0].Value)
		}
	}
	return ids
}

func TestFilterEvaluationOnDemoDirectory(t *testing.T) {
	dir := mustParseLDIF(t, string(demoLDIF), BaseDN)
	people := []string{"demo1", "demo2", "demo3", "disabled1", "helpdesk1", "admin1"}
	tests := []struct {
		name   string
		filter string
		want   []string
	}{
		{"equality", "(uid=demo1)", []string{"demo1"}},
		{"equality ignores case of value and type", "(UID=DEMO1)", []string{"demo1"}},
		{"equality ignores surrounding spaces", "(uid=  demo1 )", []string{"demo1"}},
		{"equality collapses inner spaces", "(cn=Taro    Demo)", []string{"demo1"}},
		{"alias of attribute type", "(commonName=taro demo)", []string{"demo1"}},
		{"no match", "(uid=nobody)", nil},
		{"and", "(&(objectClass=inetOrgPerson)(uid=demo2))", []string{"demo2"}},
		{"or", "(|(uid=demo1)(uid=admin1))", []string{"demo1", "admin1"}},
		{"not", "(&(objectClass=inetOrgPerson)(!(employeeType=student)))", []string{"helpdesk1", "admin1", "disabled1"}},
		{"empty and is true", "(&)", nil}, // filled in below: every entry
		{"empty or is false", "(|)", nil},
		{"present", "(&(uid=*)(objectClass=person))", people},
		{"absent attribute", "(&(objectClass=person)(!(mail=*)))", []string{"demo3"}},
		{"substring initial", "(uid=demo*)", []string{"demo1", "demo2", "demo3"}},
		{"substring final", "(uid=*1)", []string{"demo1", "disabled1", "helpdesk1", "admin1"}},
		{"substring any", "(uid=*elp*)", []string{"helpdesk1"}},
		{"substring final must end the value", "(uid=*emo)", nil},
		{"substring initial must start the value", "(uid=emo*)", nil},
		{"substring all parts", "(uid=d*sab*1)", []string{"disabled1"}},
		{"substring pieces do not overlap", "(uid=demo1*1)", nil},
		{"substring ignores case", "(cn=*TARO*)", []string{"demo1"}},
		{"escaped star is literal", `(cn=Pat O\2aBrien \28test\29)`, []string{"demo3"}},
		{"escaped star inside substring", `(cn=*O\2aB*)`, []string{"demo3"}},
		{"escaped star alone matches nothing", `(uid=\2a)`, nil},
		{"escaped parens are literal", `(displayName=*\28test\29)`, []string{"demo3"}},
		{"escaped injection stays one value", `(uid=demo1\29\28uid=\2a)`, nil},
		{"language option selects tagged value", "(displayName;lang-ja=山田 花子)", []string{"demo2"}},
		{"option name ignores case", "(displayName;LANG-JA=山田 花子)", []string{"demo2"}},
		{"type without option covers tagged value", "(displayName=山田 花子)", []string{"demo2"}},
		{"other language does not match", "(displayName;lang-en=山田 花子)", nil},
		{"present with option", "(displayName;lang-ja=*)", []string{"demo2"}},
		{"substring on japanese", "(sn;lang-ja=山*)", []string{"demo2"}},
		{"dn equality", "(memberOf=cn=idp-admins,ou=groups,dc=demo,dc=example)", []string{"admin1"}},
		{"dn equality normalizes case and spaces", "(memberOf=CN=IDP-Admins, OU=Groups,DC=demo, DC=example)", []string{"admin1"}},
		{"group member", "(&(objectClass=groupOfNames)(member=uid=helpdesk1,ou=people,dc=demo,dc=example))", []string{"idp-helpdesk"}},
		{"dn substring is undefined", "(memberOf=*admins*)", nil},
		{"negated undefined stays undefined", "(&(uid=admin1)(!(memberOf=*admins*)))", nil},
		{"invalid dn assertion is undefined", "(!(memberOf=not a dn))", nil},
		{"userPassword cannot be probed", "(userPassword=*)", nil},
		{"userPassword negation does not leak", "(&(uid=demo1)(!(userPassword={SSHA}x)))", nil},
		{"unknown attribute is undefined", "(&(uid=demo1)(!(noSuchAttr=x)))", nil},
		{"undefined in or with true is true", "(&(uid=demo1)(|(noSuchAttr=x)(uid=demo1)))", []string{"demo1"}},
		{"greater or equal", "(employeeNumber>=2000000)", []string{"helpdesk1", "admin1"}},
		{"less or equal", "(employeeNumber<=1000001)", []string{"demo1"}},
		{"approx falls back to equality", "(uid~=DEMO1)", []string{"demo1"}},
		{"extensible match is undefined", "(uid:caseExactMatch:=demo1)", nil},
		{"disabled account", "(employeeType=disabled)", []string{"disabled1"}},
		{"objectClass ignores case", "(&(objectclass=GROUPOFNAMES)(cn=idp-admins))", []string{"idp-admins"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if tc.filter == "(&)" {
				want = nil
				for _, e := range dir.entries {
					dn, _ := ldap.ParseDN(e.dn)
					want = append(want, dn.RDNs[0].Attributes[0].Value)
				}
			}
			got := matchingIDs(t, dir, tc.filter)
			if !sameSet(got, want) {
				t.Errorf("filter %s matched %v, want %v", tc.filter, got, want)
			}
		})
	}
}

func TestFilterEscapedValues(t *testing.T) {
	dir := mustParseLDIF(t, testLDIF, "dc=t")
	tests := []struct {
		filter string
		want   []string
	}{
		{`(cn=back\5cslash)`, []string{`back\slash`}},
		{`(cn=back\5Cslash)`, []string{`back\slash`}}, // hex digits in either case
		{`(cn=*\5c*)`, []string{`back\slash`}},
		{`(sn=\2a)`, []string{"star"}},
		{`(sn=*\2a*)`, []string{"star"}},
		{`(description=\28a\29)`, []string{"star"}},
		{`(sn=a\00b)`, []string{"nul"}},
		{`(sn=a b c)`, []string{`back\slash`}},
		{`(sn=a*c)`, []string{`back\slash`}},
		{`(uidNumber=042)`, []string{"star"}}, // integer matching
		{`(uidNumber>=41)`, []string{"star"}},
		{`(uidNumber<=41)`, nil},
		{`(uidNumber=forty)`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			if got := matchingIDs(t, dir, tc.filter); !sameSet(got, tc.want) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFilterInjectionIsLiteral builds filters the way a careful client does
// (ldap.EscapeFilter on user input) and checks hostile input never widens
// the match.
func TestFilterInjectionIsLiteral(t *testing.T) {
	dir := mustParseLDIF(t, string(demoLDIF), BaseDN)
	tests := []struct {
		input string
		want  []string
	}{
		{"demo1", []string{"demo1"}},
		{"*", nil},
		{"demo*", nil},
		{"demo1)(uid=*", nil},
		{"*)(|(uid=*", nil},
		{"demo1)(|(objectClass=*)", nil},
		{`\`, nil},
		{"demo1\x00", nil},
		{"admin1)(!(uid=x", nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.input), func(t *testing.T) {
			filter := fmt.Sprintf("(&(objectClass=inetOrgPerson)(uid=%s))", ldap.EscapeFilter(tc.input))
			if got := matchingIDs(t, dir, filter); !sameSet(got, tc.want) {
				t.Errorf("filter %s matched %v, want %v", filter, got, tc.want)
			}
		})
	}
}

func TestParseFilterRejectsMalformed(t *testing.T) {
	deep := strings.Repeat("(!", maxFilterDepth+2) + "(uid=x)" + strings.Repeat(")", maxFilterDepth+2)
	for _, in := range []string{
		"",
		"uid=demo1",
		"(uid=demo1",
		`(uid=\zz)`,
		`(uid=\2)`,
		"(=x)",
		"(bad_attr=x)",
		"(uid;=x)",
		"(1uid=x)",
		deep,
	} {
		t.Run(fmt.Sprintf("%.40q", in), func(t *testing.T) {
			if _, err := parseFilter(in); !errors.Is(err, errBadFilter) {
				t.Errorf("parseFilter(%q) = %v, want errBadFilter", in, err)
			}
		})
	}
}

func TestTruthTables(t *testing.T) {
	dir := mustParseLDIF(t, testLDIF, "dc=t")
	e := dir.entries[2] // cn=star
	T, F, U := "(cn=star)", "(cn=nope)", "(noSuchAttr=x)"
	tests := []struct {
		filter string
		want   truth
	}{
		{T, isTrue}, {F, isFalse}, {U, isUndefined},
		{"(!" + T + ")", isFalse}, {"(!" + F + ")", isTrue}, {"(!" + U + ")", isUndefined},
		{"(&" + T + U + ")", isUndefined}, {"(&" + F + U + ")", isFalse}, {"(&" + T + T + ")", isTrue},
		{"(|" + T + U + ")", isTrue}, {"(|" + F + U + ")", isUndefined}, {"(|" + F + F + ")", isFalse},
	}
	for _, tc := range tests {
		f, err := parseFilter(tc.filter)
		if err != nil {
			t.Fatalf("parseFilter(%q): %v", tc.filter, err)
		}
		if got := f.eval(e, dir.known); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.filter, got, tc.want)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
