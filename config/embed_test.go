package config

import (
	"os"
	"slices"
	"testing"
)

// An embedding program sets only the URL and the secret; what it brings
// itself (directory, mailer, store) is not demanded from the config, while
// the binary, which wires them from config, still gets every problem.
func TestValidateOnlyChecksTheConfiguredParts(t *testing.T) {
	embedded := func() Config {
		c := Default()
		c.Server.PublicURL = "https://idp.example.ac.jp"
		c.Security.SecretKey = SecretValue(testSecretKey)
		c.Store.DSN = SecretValue("")
		return c
	}
	tests := []struct {
		name      string
		own       []Part
		edit      func(*Config)
		wantPaths []string
	}{
		{name: "all parts brought", own: Embedded},
		{name: "binary checks every section", own: nil,
			wantPaths: []string{"ldap.urls", "ldap.user_base_dn", "store.dsn", "mail.from", "mail.smtp.host"}},
		{name: "own directory only", own: []Part{OwnDirectory},
			wantPaths: []string{"store.dsn", "mail.from", "mail.smtp.host"}},
		{name: "own mailer only", own: []Part{OwnMailer},
			wantPaths: []string{"ldap.urls", "ldap.user_base_dn", "store.dsn"}},
		{name: "own store only", own: []Part{OwnStore},
			wantPaths: []string{"ldap.urls", "ldap.user_base_dn", "mail.from", "mail.smtp.host"}},
		{name: "core settings still checked", own: Embedded,
			edit:      func(c *Config) { c.Server.PublicURL = ""; c.MFA.Email.CodeDigits = 3 },
			wantPaths: []string{"server.public_url", "mfa.email.code_digits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := embedded()
			if tt.edit != nil {
				tt.edit(&c)
			}
			err := c.Validate(tt.own...)
			got := errorPaths(t, err)
			slices.Sort(got)
			want := slices.Clone(tt.wantPaths)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("error paths = %q, want %q\nerr: %v", got, want, err)
			}
		})
	}
}

// Colours go into a stylesheet and the logo is held in memory: only
// #rrggbb and a small image file of a known type are accepted.
func TestValidateBrandingAssets(t *testing.T) {
	dir := t.TempDir()
	small := dir + "/logo.png"
	big := dir + "/big.svg"
	if err := os.WriteFile(small, []byte("png"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, MaxLogoBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		edit     func(*Branding)
		wantPath string
		wantMsg  string
	}{
		{"logo accepted", func(b *Branding) { b.LogoFile = small }, "", ""},
		{"colour with CSS in it", func(b *Branding) { b.Colors.Header = "red; } body { display:none" }, "branding.colors.header", "#rrggbb"},
		{"short colour", func(b *Branding) { b.Colors.Accent = "#fff" }, "branding.colors.accent", "#rrggbb"},
		{"logo of unknown type", func(b *Branding) { b.LogoFile = dir + "/logo.gif" }, "branding.logo_file", ".png, .jpg or .svg"},
		{"missing logo", func(b *Branding) { b.LogoFile = dir + "/none.png" }, "branding.logo_file", "cannot be read"},
		{"logo too large", func(b *Branding) { b.LogoFile = big }, "branding.logo_file", "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c.Branding)
			err := c.Validate()
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			expectValidation(t, err, tt.wantPath, tt.wantMsg, true)
		})
	}
}
