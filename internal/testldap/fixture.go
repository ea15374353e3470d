package testldap

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // {SSHA} is what the fixture stores; not a security choice of the product
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Directory layout of the fixture.
const (
	BaseDN          = "dc=campus,dc=example"
	PeopleDN        = "ou=people," + BaseDN
	GroupsDN        = "ou=groups," + BaseDN
	SystemDN        = "ou=system," + BaseDN
	ServiceDN       = "cn=idp-service," + SystemDN
	ServicePassword = "service-secret"
	// DecoyDN is the timing decoy of WithCryptPasswords: an entry whose
	// password, in the directory's hash scheme, nobody knows.
	DecoyDN = "cn=timing-decoy," + SystemDN

	// The root DN bypasses ACLs; only the harness uses it, to load and modify data.
	rootDN       = "cn=admin," + BaseDN
	rootPassword = "root-secret"
)

// User is a fixture account. Groups are sorted by name.
type User struct {
	ID            string
	Password      string
	DN            string
	Mail          string
	DisplayName   string
	DisplayNameJA string
	Groups        []string
	// EmployeeType is "disabled" for the account the directory has disabled.
	EmployeeType string
}

// Fixture accounts, loaded into every server.
var (
	Alice = User{
		ID: "alice", Password: "alice-password1", DN: "uid=alice," + PeopleDN,
		Mail: "alice@campus.example", DisplayName: "Alice Liddell",
		Groups: []string{"students"}, EmployeeType: "student",
	}
	Bob = User{
		ID: "bob", Password: "bob-password2", DN: "uid=bob," + PeopleDN,
		Mail: "bob@campus.example", DisplayName: "Bob Tanaka",
		Groups: []string{"staff"}, EmployeeType: "staff",
	}
	Disabled = User{
		ID: "carol", Password: "carol-password3", DN: "uid=carol," + PeopleDN,
		Mail: "carol@campus.example", DisplayName: "Carol Disabled",
		Groups: []string{"students"}, EmployeeType: "disabled",
	}
	// Taro's password has leading and trailing spaces and non-ASCII text:
	// it must reach the directory exactly as typed.
	Taro = User{
		ID: "taro", Password: "  pässwörd mit Leerzeichen 秘密 ", DN: "uid=taro," + PeopleDN,
		Mail: "taro@campus.example", DisplayName: "Taro Yamada", DisplayNameJA: "山田 太郎",
		Groups: []string{"students"}, EmployeeType: "student",
	}
	Helpdesk = User{
		ID: "helpdesk1", Password: "helpdesk-pass", DN: "uid=helpdesk1," + PeopleDN,
		Mail: "helpdesk1@campus.example", DisplayName: "Helpdesk One",
		Groups: []string{"idp-helpdesk"}, EmployeeType: "staff",
	}
	Admin = User{
		ID: "admin1", Password: "admin-pass", DN: "uid=admin1," + PeopleDN,
		Mail: "admin1@campus.example", DisplayName: "Admin One",
		Groups: []string{"idp-admins"}, EmployeeType: "staff",
	}
)

// Users returns every fixture account.
func Users() []User {
	return []User{Alice, Bob, Disabled, Taro, Helpdesk, Admin}
}

// GeneratedUser is the i-th account added by WithUsers: ID user00042,
// password bench-password-00042, a student.
func GeneratedUser(i int) User {
	id := fmt.Sprintf("user%05d", i)
	return User{
		ID: id, Password: fmt.Sprintf("bench-password-%05d", i), DN: "uid=" + id + "," + PeopleDN,
		Mail: id + "@campus.example", DisplayName: fmt.Sprintf("Generated User%05d", i),
		Groups: []string{"students"}, EmployeeType: "student",
	}
}

// PasswordOnlyUser is the i-th account added by WithPasswordOnlyUsers: ID
// pw00042, password bench-password-pw-00042, a student like GeneratedUser
// but in a separate range, so a program can keep these accounts without a
// second factor while it enrolls the others.
func PasswordOnlyUser(i int) User {
	id := fmt.Sprintf("pw%05d", i)
	return User{
		ID: id, Password: fmt.Sprintf("bench-password-pw-%05d", i), DN: "uid=" + id + "," + PeopleDN,
		Mail: id + "@campus.example", DisplayName: fmt.Sprintf("Password Only User%05d", i),
		Groups: []string{"students"}, EmployeeType: "student",
	}
}

// fixtureLDIF renders the whole directory tree with the fixture accounts
// and generated ones more. Users come before groups so the memberof overlay
// can annotate them when the groups are added.
func fixtureLDIF(generated, passwordOnly, cryptRounds int) (string, error) {
	hash := SSHA
	if cryptRounds > 0 {
		hash = func(pw string) (string, error) { return CryptSHA512(pw, cryptRounds) }
	}
	var b strings.Builder
	entry := func(dn string, attrs ...[2]string) {
		writeAttr(&b, "dn", dn)
		for _, a := range attrs {
			writeAttr(&b, a[0], a[1])
		}
		b.WriteString("\n")
	}
	entry(BaseDN, [2]string{"objectClass", "dcObject"}, [2]string{"objectClass", "organization"},
		[2]string{"dc", "campus"}, [2]string{"o", "Campus"})
	for _, ou := range []string{"people", "groups", "system"} {
		entry("ou="+ou+","+BaseDN, [2]string{"objectClass", "organizationalUnit"}, [2]string{"ou", ou})
	}
	servicePW, err := SSHA(ServicePassword)
	if err != nil {
		return "", err
	}
	entry(ServiceDN, [2]string{"objectClass", "organizationalRole"}, [2]string{"objectClass", "simpleSecurityObject"},
		[2]string{"cn", "idp-service"}, [2]string{"userPassword", servicePW})

	members := map[string][]string{}
	var groupOrder []string
	users := Users()
	for i := range generated {
		users = append(users, GeneratedUser(i))
	}
	for i := range passwordOnly {
		users = append(users, PasswordOnlyUser(i))
	}
	if cryptRounds > 0 {
		secret := make([]byte, 24)
		if _, err := rand.Read(secret); err != nil {
			return "", err
		}
		decoyPW, err := hash(base64.RawStdEncoding.EncodeToString(secret))
		if err != nil {
			return "", err
		}
		entry(DecoyDN, [2]string{"objectClass", "organizationalRole"}, [2]string{"objectClass", "simpleSecurityObject"},
			[2]string{"cn", "timing-decoy"}, [2]string{"userPassword", decoyPW})
	}
	for _, u := range users {
		pw, err := hash(u.Password)
		if err != nil {
			return "", err
		}
		surname := u.DisplayName
		if i := strings.LastIndex(surname, " "); i >= 0 {
			surname = surname[i+1:]
		}
		attrs := [][2]string{
			{"objectClass", "inetOrgPerson"}, {"uid", u.ID}, {"cn", u.DisplayName}, {"sn", surname},
			{"displayName", u.DisplayName}, {"mail", u.Mail}, {"employeeType", u.EmployeeType},
			{"userPassword", pw},
		}
		if u.DisplayNameJA != "" {
			attrs = append(attrs, [2]string{"displayName;lang-ja", u.DisplayNameJA})
		}
		entry(u.DN, attrs...)
		for _, g := range u.Groups {
			if _, seen := members[g]; !seen {
				groupOrder = append(groupOrder, g)
			}
			members[g] = append(members[g], u.DN)
		}
	}
	for _, g := range groupOrder {
		attrs := [][2]string{{"objectClass", "groupOfNames"}, {"cn", g}}
		for _, m := range members[g] {
			attrs = append(attrs, [2]string{"member", m})
		}
		entry("cn="+g+","+GroupsDN, attrs...)
	}
	return b.String(), nil
}

// writeAttr writes one LDIF line, base64-encoding values that LDIF cannot
// carry as plain text (RFC 2849 SAFE-STRING).
func writeAttr(b *strings.Builder, name, value string) {
	if ldifSafe(value) {
		fmt.Fprintf(b, "%s: %s\n", name, value)
		return
	}
	fmt.Fprintf(b, "%s:: %s\n", name, base64.StdEncoding.EncodeToString([]byte(value)))
}

func ldifSafe(v string) bool {
	if v == "" {
		return true
	}
	if !utf8.ValidString(v) || v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}

// SSHA returns the OpenLDAP {SSHA} form of password: base64 of
// sha1(password+salt) followed by the 8-byte random salt.
func SSHA(password string) (string, error) {
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := sha1.New() //nolint:gosec // see import
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...)), nil
}
