package samlprovider

import (
	"testing"

	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/config"
)

func TestDecidePolicy(t *testing.T) {
	rac := func(comparison string, classes ...string) *requestedAuthnContext {
		return &requestedAuthnContext{Comparison: comparison, ClassRefs: classes}
	}
	const ppt, mfa = ClassPasswordProtectedTransport, ClassMFA
	cases := []struct {
		name       string
		rac        *requestedAuthnContext
		spMFA      bool
		ok         bool
		requireMFA bool
		answerPwd  string // classRef after a password-only login
		answerMFA  string // classRef after a login with MFA
	}{
		{"nothing requested", nil, false, true, false, ppt, mfa},
		{"nothing requested, SP requires MFA", nil, true, true, true, "", mfa},
		{"exact MFA", rac("exact", mfa), false, true, true, "", mfa},
		{"comparison defaults to exact", rac("", mfa), false, true, true, "", mfa},
		{"exact PPT", rac("exact", ppt), false, true, false, ppt, ppt},
		{"exact PPT, SP requires MFA", rac("exact", ppt), true, false, false, "", ""},
		{"exact PPT or MFA", rac("exact", ppt, mfa), false, true, false, ppt, mfa},
		{"minimum PPT", rac("minimum", ppt), false, true, false, ppt, mfa},
		{"minimum Password", rac("minimum", classPassword), false, true, false, ppt, mfa},
		{"minimum MFA", rac("minimum", mfa), false, true, true, "", mfa},
		{"better than PPT", rac("better", ppt), false, true, true, "", mfa},
		{"better than MFA", rac("better", mfa), false, false, false, "", ""},
		{"maximum PPT", rac("maximum", ppt), false, true, false, ppt, ppt},
		{"maximum MFA", rac("maximum", mfa), false, true, false, ppt, mfa},
		{"exact Password only", rac("exact", classPassword), false, false, false, "", ""},
		{"unknown class", rac("exact", "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos"), false, false, false, "", ""},
		{"unknown comparison", rac("roughly", ppt), false, false, false, "", ""},
		{"declarations only", &requestedAuthnContext{DeclRefs: []string{"urn:example:decl"}}, false, false, false, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := decidePolicy(tc.rac, tc.spMFA)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if p.requireMFA() != tc.requireMFA {
				t.Errorf("requireMFA = %v, want %v", p.requireMFA(), tc.requireMFA)
			}
			if got := p.classRef(false); got != tc.answerPwd {
				t.Errorf("after a password: %q, want %q", got, tc.answerPwd)
			}
			if got := p.classRef(true); got != tc.answerMFA {
				t.Errorf("after MFA: %q, want %q", got, tc.answerMFA)
			}
		})
	}
}

func TestChooseNameIDFormat(t *testing.T) {
	str := func(s string) *string { return &s }
	cases := []struct {
		configured string
		requested  *string
		want       string
		ok         bool
	}{
		{"", nil, NameIDFormatPersistent, true},
		{config.NameIDTransient, nil, NameIDFormatTransient, true},
		{config.NameIDEmail, str(""), NameIDFormatEmail, true},
		{config.NameIDEmail, str(nameIDFormatUnspecified), NameIDFormatEmail, true},
		{config.NameIDPersistent, str(NameIDFormatPersistent), NameIDFormatPersistent, true},
		{config.NameIDPersistent, str(NameIDFormatTransient), NameIDFormatTransient, true},
		{config.NameIDPersistent, str(NameIDFormatEmail), "", false},
		{config.NameIDTransient, str(NameIDFormatPersistent), "", false},
		{config.NameIDEmail, str(NameIDFormatPersistent), "", false},
		{config.NameIDPersistent, str("urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"), "", false},
	}
	for _, tc := range cases {
		sp := &ServiceProvider{Config: config.SAMLServiceProvider{NameIDFormat: tc.configured}}
		var policy *saml.NameIDPolicy
		if tc.requested != nil {
			policy = &saml.NameIDPolicy{Format: tc.requested}
		}
		got, ok := chooseNameIDFormat(sp, policy)
		if got != tc.want || ok != tc.ok {
			req := "<none>"
			if tc.requested != nil {
				req = *tc.requested
			}
			t.Errorf("configured %q, requested %q: got %q %v, want %q %v", tc.configured, req, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPersistentIDs(t *testing.T) {
	p := &Provider{persistentKey: []byte("0123456789abcdef0123456789abcdef")}
	other := &Provider{persistentKey: []byte("fedcba9876543210fedcba9876543210")}
	a := p.persistentID("https://sp1.example/sp", "alice")
	cases := []struct {
		name string
		id   string
		same bool
	}{
		{"again", p.persistentID("https://sp1.example/sp", "alice"), true},
		{"another SP", p.persistentID("https://sp2.example/sp", "alice"), false},
		{"another user", p.persistentID("https://sp1.example/sp", "bob"), false},
		{"no ambiguity at the separator", p.persistentID("https://sp1.example/spalice", ""), false},
		{"another key", other.persistentID("https://sp1.example/sp", "alice"), false},
	}
	for _, tc := range cases {
		if (tc.id == a) != tc.same {
			t.Errorf("%s: %q vs %q", tc.name, tc.id, a)
		}
	}
	if len(a) != 43 {
		t.Errorf("persistent ID %q: want 256 bits in base64url", a)
	}
}
