package devldap

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

func TestParseLDIF(t *testing.T) {
	const in = "version: 1\n\n" +
		"# a comment\n" +
		"#  folded comment line\n" +
		"dn: dc=t\r\n" +
		"objectClass: top\n" +
		"dc: t\n" +
		"\n\n" +
		"dn: cn=long,dc=t\n" +
		"cn: long\n" +
		"description: first part\n" +
		"  and the folded rest\n" +
		"cn;lang-ja:: 5bGx55Sw\n" +
		"CN: second\n" +
		"objectClass:person\n"
	dir := mustParseLDIF(t, in, "dc=t")
	if len(dir.entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(dir.entries))
	}
	e := dir.entries[1]
	if got := e.values(attrDesc{typ: "description"}); !slices.Equal(got, []string{"first part and the folded rest"}) {
		t.Errorf("folded description = %q", got)
	}
	if got := e.values(attrDesc{typ: "cn"}); !slices.Equal(got, []string{"long", "second", "山田"}) {
		t.Errorf("cn values (with subtypes) = %q", got)
	}
	if got := e.values(attrDesc{typ: "cn", options: []string{"lang-ja"}}); !slices.Equal(got, []string{"山田"}) {
		t.Errorf("cn;lang-ja = %q", got)
	}
	if got := e.values(attrDesc{typ: "objectclass"}); !slices.Equal(got, []string{"person"}) {
		t.Errorf("objectClass without space after colon = %q", got)
	}
	if found, err := dir.lookup("CN=Long, DC=T"); err != nil || found != e {
		t.Errorf("lookup with other spelling = %v, %v", found, err)
	}
}

func TestParseLDIFRejects(t *testing.T) {
	const root = "dn: dc=t\nobjectClass: top\ndc: t\n\n"
	tests := []struct {
		name, ldif, wantErr string
	}{
		{"no suffix entry", "dn: dc=other\ndc: other\n", "outside the suffix"},
		{"empty", "", "no entry for the suffix"},
		{"record without dn", root + "cn: x\n", "does not start with dn"},
		{"duplicate", root + "dn: cn=a,dc=t\ncn: a\n\ndn: CN=A,dc=t\ncn: a\n", "duplicate"},
		{"missing parent", root + "dn: cn=a,ou=none,dc=t\ncn: a\n", "before its parent"},
		{"naming value missing", root + "dn: cn=a,dc=t\ncn: b\n", "naming value"},
		{"bad base64", root + "dn: cn=a,dc=t\ncn: a\nsn:: !!!\n", "base64"},
		{"url value", root + "dn: cn=a,dc=t\ncn: a\njpegPhoto:< file:///etc/passwd\n", "URL values"},
		{"change record", root + "dn: cn=a,dc=t\nchangetype: add\ncn: a\n", "change records"},
		{"unknown password scheme", root + "dn: cn=a,dc=t\ncn: a\nuserPassword: {CRYPT}abc\n", "scheme"},
		{"truncated hash", root + "dn: cn=a,dc=t\ncn: a\nuserPassword: {SSHA}AAAA\n", "wrong length"},
		{"continuation first", " oops\n" + root, "continuation"},
		{"bad version", "version: 2\n\n" + root, "version"},
		{"bad attribute name", root + "dn: cn=a,dc=t\ncn: a\nbad_name: x\n", "invalid attribute"},
		{"line without colon", root + "dn: cn=a,dc=t\ncn a\n", "attribute: value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLDIF([]byte(tc.ldif), "dc=t")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseLDIF error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPasswordMatches(t *testing.T) {
	salted := func(scheme string, sum func([]byte) []byte, password, salt string) string {
		digest := sum([]byte(password + salt))
		return "{" + scheme + "}" + base64.StdEncoding.EncodeToString(append(digest, salt...))
	}
	sha256sum := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	sha512sum := func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }
	tests := []struct {
		name, stored, password string
		want                   bool
	}{
		{"cleartext", "secret", "secret", true},
		{"cleartext wrong", "secret", "Secret", false},
		{"cleartext prefix", "secret", "secre", false},
		{"ssha from slappasswd-style data", "{SSHA}crHjbUUCN3WZAMmgTqB3KZ+gGVVzVmM4cSNMdA==", ServicePassword, true},
		{"ssha lower-case scheme", "{ssha}crHjbUUCN3WZAMmgTqB3KZ+gGVVzVmM4cSNMdA==", ServicePassword, true},
		{"ssha wrong", "{SSHA}crHjbUUCN3WZAMmgTqB3KZ+gGVVzVmM4cSNMdA==", "dev-service-passwor", false},
		{"ssha empty password", "{SSHA}crHjbUUCN3WZAMmgTqB3KZ+gGVVzVmM4cSNMdA==", "", false},
		{"sha unsalted", salted("SHA", sha1sum, "pw", ""), "pw", true},
		{"sha with stray salt", salted("SHA", sha1sum, "pw", "x"), "pw", false},
		{"ssha256", salted("SSHA256", sha256sum, "pw", "saltsalt"), "pw", true},
		{"ssha512", salted("SSHA512", sha512sum, "pw", "saltsalt"), "pw", true},
		{"ssha512 wrong", salted("SSHA512", sha512sum, "pw", "saltsalt"), "pW", false},
		{"unknown scheme", "{CRYPT}abc", "abc", false},
		{"scheme text is not cleartext", "{SSHA}pw", "{SSHA}pw", false},
		{"bad base64", "{SSHA}###", "pw", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := passwordMatches(tc.stored, tc.password); got != tc.want {
				t.Errorf("passwordMatches(%q, %q) = %v, want %v", tc.stored, tc.password, got, tc.want)
			}
		})
	}
}

// TestDemoDirectory checks the demo data offers what dev mode relies on.
func TestDemoDirectory(t *testing.T) {
	dir := mustParseLDIF(t, string(demoLDIF), BaseDN)
	get := func(dn string) *entry {
		t.Helper()
		e, err := dir.lookup(dn)
		if err != nil || e == nil {
			t.Fatalf("entry %q missing (%v)", dn, err)
		}
		return e
	}
	user := func(id string) *entry { return get("uid=" + id + "," + PeopleDN) }

	if got := user("demo2").values(attrDesc{typ: "displayname", options: []string{"lang-ja"}}); !slices.Equal(got, []string{"山田 花子"}) {
		t.Errorf("demo2 displayName;lang-ja = %q", got)
	}
	if got := user("disabled1").values(attrDesc{typ: "employeetype"}); !slices.Equal(got, []string{"disabled"}) {
		t.Errorf("disabled1 employeeType = %q", got)
	}
	for id, group := range map[string]string{"helpdesk1": "idp-helpdesk", "admin1": "idp-admins"} {
		want := "cn=" + group + "," + GroupsDN
		if got := user(id).values(attrDesc{typ: "memberof"}); !slices.Contains(got, want) {
			t.Errorf("%s memberOf = %q, want %q", id, got, want)
		}
	}
	get(ServiceDN)

	// memberOf is static, so it must agree with the groups both ways.
	memberships := map[[2]string]bool{}
	for _, e := range dir.entries {
		for _, g := range e.values(attrDesc{typ: "memberof"}) {
			ge := get(g)
			memberships[[2]string{ge.key(), e.key()}] = true
		}
	}
	for _, g := range dir.entries {
		for _, m := range g.values(attrDesc{typ: "member"}) {
			me := get(m)
			key := [2]string{g.key(), me.key()}
			if !memberships[key] {
				t.Errorf("%s lists member %s, which lacks memberOf", g.dn, m)
			}
			delete(memberships, key)
		}
	}
	for k := range memberships {
		t.Errorf("memberOf %s on %s has no matching member value", k[0], k[1])
	}
}

func sha1sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}
