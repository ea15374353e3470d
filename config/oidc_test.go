package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func validOIDCClient() OIDCClient {
	return OIDCClient{
		ID:           "portal",
		Name:         "Campus portal",
		Secret:       SecretValue(strings.Repeat("s", 40)),
		RedirectURIs: []string{"https://portal.example.ac.jp/oidc/callback"},
	}
}

func TestOIDCValidateRules(t *testing.T) {
	bcryptHash, err := bcrypt.GenerateFromPassword([]byte("a long enough client secret"), 10)
	if err != nil {
		t.Fatal(err)
	}
	lowCost, err := bcrypt.GenerateFromPassword([]byte("x"), 4)
	if err != nil {
		t.Fatal(err)
	}
	withClient := func(f func(c *OIDCClient)) func(*OIDC) {
		return func(o *OIDC) {
			c := validOIDCClient()
			f(&c)
			o.Clients = append(o.Clients, c)
		}
	}
	tests := []struct {
		name     string
		mutate   func(*OIDC)
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"defaults", func(*OIDC) {}, "", ""},
		{"confidential client with secret", withClient(func(*OIDCClient) {}), "", ""},
		{"bcrypt hash", withClient(func(c *OIDCClient) { c.Secret = Secret{}; c.SecretHash = string(bcryptHash) }), "", ""},
		{"argon2id hash", withClient(func(c *OIDCClient) {
			c.Secret = Secret{}
			c.SecretHash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
		}), "", ""},
		{"public native client", withClient(func(c *OIDCClient) {
			c.Secret = Secret{}
			c.TokenEndpointAuthMethod = OIDCAuthNone
			c.ApplicationType = OIDCAppNative
			c.RedirectURIs = []string{"http://127.0.0.1/callback", "jp.ac.example.app:/callback"}
		}), "", ""},
		{"machine client without redirect", withClient(func(c *OIDCClient) {
			c.RedirectURIs = nil
			c.ClientCredentials = true
			c.Scopes = []string{"groups"}
		}), "", ""},
		{"pairwise with salt", func(o *OIDC) {
			o.PairwiseSalt = SecretValue("0123456789abcdef-salt")
			withClient(func(c *OIDCClient) { c.SubjectType = OIDCSubjectPairwise })(o)
		}, "", ""},

		{"code lifetime over a minute", func(o *OIDC) { o.CodeLifetime = 61 * time.Second }, "oidc.code_lifetime", "at most 1m"},
		{"refresh idle beyond absolute", func(o *OIDC) { o.RefreshTokenLifetime = 40 * 24 * time.Hour }, "oidc.refresh_token_lifetime", "must not exceed"},
		{"unknown algorithm", func(o *OIDC) { o.Keys.Algorithm = "HS256" }, "oidc.keys.algorithm", "RS256, ES256, EdDSA"},
		{"EdDSA by default", func(o *OIDC) { o.Keys.Algorithm = OIDCAlgEdDSA }, "", ""},
		{"client signing algorithms", withClient(func(c *OIDCClient) { c.IDTokenSignedResponseAlg = OIDCAlgEdDSA }), "", ""},
		{"unknown client signing algorithm", withClient(func(c *OIDCClient) { c.IDTokenSignedResponseAlg = "none" }),
			"oidc.clients[0].id_token_signed_response_alg", `must be one of RS256, ES256, EdDSA (got "none")`},
		{"client signing algorithm spelt in lower case", withClient(func(c *OIDCClient) { c.IDTokenSignedResponseAlg = "es256" }),
			"oidc.clients[0].id_token_signed_response_alg", "must be one of"},
		{"small RSA key for an RS256 client", func(o *OIDC) {
			o.Keys.Algorithm, o.Keys.RSABits = OIDCAlgES256, 1024
			withClient(func(c *OIDCClient) { c.IDTokenSignedResponseAlg = OIDCAlgRS256 })(o)
		}, "oidc.keys.rsa_bits", "2048, 3072 or 4096"},
		{"RSA key size unused", func(o *OIDC) { o.Keys.Algorithm, o.Keys.RSABits = OIDCAlgES256, 1024 }, "", ""},
		{"small RSA key", func(o *OIDC) { o.Keys.RSABits = 1024 }, "oidc.keys.rsa_bits", "2048, 3072 or 4096"},
		{"rotation too often", func(o *OIDC) { o.Keys.RotationPeriod = time.Minute }, "oidc.keys.rotation_period", "at least 1h"},
		{"same acr for both", func(o *OIDC) { o.ACR.Password = o.ACR.MFA }, "oidc.acr.mfa", "must differ"},
		{"acr with space", func(o *OIDC) { o.ACR.Password = "a b" }, "oidc.acr.password", "one token"},
		{"subject attribute", func(o *OIDC) { o.SubjectAttribute = "entryUUID" }, "", ""},
		{"subject attribute misspelt", func(o *OIDC) { o.SubjectAttribute = "entry UUID" }, "oidc.subject_attribute", "not an LDAP attribute"},
		{"short pairwise salt", func(o *OIDC) { o.PairwiseSalt = SecretValue("short") }, "oidc.pairwise_salt", "at least 16"},
		{"reserved claim", func(o *OIDC) {
			o.Claims = append(o.Claims, OIDCClaim{Name: "sub", Source: ClaimSourceID, Scope: "profile"})
		}, "oidc.claims[7].name", "set by the provider"},
		{"claim twice", func(o *OIDC) {
			o.Claims = append(o.Claims, OIDCClaim{Name: "email", Source: ClaimSourceMail, Scope: "email"})
		}, "oidc.claims[7].name", "repeats claims[3]"},
		{"unknown claim source", func(o *OIDC) { o.Claims[0].Source = "uid" }, "oidc.claims[0].source", "must be one of"},
		{"bad attribute source", func(o *OIDC) { o.Claims[5].Source = "attribute:" }, "oidc.claims[5].source", "is required"},
		{"claim under offline_access", func(o *OIDC) { o.Claims[0].Scope = "offline_access" }, "oidc.claims[0].scope", "refresh tokens"},

		{"client without id", withClient(func(c *OIDCClient) { c.ID = "" }), "oidc.clients[0].id", "is required"},
		{"client id with colon", withClient(func(c *OIDCClient) { c.ID = "a:b" }), "oidc.clients[0].id", "only letters"},
		{"duplicate client", func(o *OIDC) {
			o.Clients = []OIDCClient{validOIDCClient(), validOIDCClient()}
		}, "oidc.clients[1].id", "repeats clients[0]"},
		{"confidential without secret", withClient(func(c *OIDCClient) { c.Secret = Secret{} }), "oidc.clients[0].secret_hash", "is required"},
		{"secret and hash", withClient(func(c *OIDCClient) { c.SecretHash = string(bcryptHash) }), "oidc.clients[0].secret_hash", "not both"},
		{"short secret", withClient(func(c *OIDCClient) { c.Secret = SecretValue("short") }), "oidc.clients[0].secret", "at least 32"},
		{"plain text as hash", withClient(func(c *OIDCClient) { c.Secret = Secret{}; c.SecretHash = "secret" }), "oidc.clients[0].secret_hash", "bcrypt"},
		{"cheap bcrypt", withClient(func(c *OIDCClient) { c.Secret = Secret{}; c.SecretHash = string(lowCost) }), "oidc.clients[0].secret_hash", "too low"},
		{"malformed argon2id", withClient(func(c *OIDCClient) { c.Secret = Secret{}; c.SecretHash = "$argon2id$v=19$m=x$s$h" }), "oidc.clients[0].secret_hash", "parameters"},
		{"public client with secret", withClient(func(c *OIDCClient) { c.TokenEndpointAuthMethod = OIDCAuthNone }), "oidc.clients[0].token_endpoint_auth_method", "public client"},
		{"public client credentials", withClient(func(c *OIDCClient) {
			c.Secret = Secret{}
			c.TokenEndpointAuthMethod = OIDCAuthNone
			c.ClientCredentials = true
		}), "oidc.clients[0].client_credentials", "confidential"},
		{"public client without PKCE", withClient(func(c *OIDCClient) {
			c.Secret = Secret{}
			c.TokenEndpointAuthMethod = OIDCAuthNone
			c.AllowMissingPKCE = true
		}), "oidc.clients[0].allow_missing_pkce", "only protection"},
		{"native with secret", withClient(func(c *OIDCClient) { c.ApplicationType = OIDCAppNative }), "oidc.clients[0].application_type", "cannot keep a secret"},
		{"unknown auth method", withClient(func(c *OIDCClient) { c.TokenEndpointAuthMethod = "private_key_jwt" }), "oidc.clients[0].token_endpoint_auth_method", "must be one of"},
		{"no redirect uri", withClient(func(c *OIDCClient) { c.RedirectURIs = nil }), "oidc.clients[0].redirect_uris", "at least one"},
		{"http redirect off loopback", withClient(func(c *OIDCClient) { c.RedirectURIs = []string{"http://portal.example.ac.jp/cb"} }),
			"oidc.clients[0].redirect_uris[0]", "https"},
		{"redirect with fragment", withClient(func(c *OIDCClient) { c.RedirectURIs = []string{"https://portal.example.ac.jp/cb#x"} }),
			"oidc.clients[0].redirect_uris[0]", "fragment"},
		{"relative redirect", withClient(func(c *OIDCClient) { c.RedirectURIs = []string{"/cb"} }), "oidc.clients[0].redirect_uris[0]", "absolute"},
		{"custom scheme for web app", withClient(func(c *OIDCClient) { c.RedirectURIs = []string{"jp.ac.example.app:/cb"} }),
			"oidc.clients[0].redirect_uris[0]", "https"},
		{"bad post-logout uri", withClient(func(c *OIDCClient) { c.PostLogoutRedirectURIs = []string{"http://portal.example.ac.jp/"} }),
			"oidc.clients[0].post_logout_redirect_uris[0]", "https"},
		{"unknown scope", withClient(func(c *OIDCClient) { c.Scopes = []string{"openid", "phone"} }), "oidc.clients[0].scopes[1]", "not a known scope"},
		{"scopes without openid", withClient(func(c *OIDCClient) { c.Scopes = []string{"profile"} }), "oidc.clients[0].scopes", "include openid"},
		{"pairwise without salt", withClient(func(c *OIDCClient) { c.SubjectType = OIDCSubjectPairwise }), "oidc.clients[0].subject_type", "pairwise_salt"},
		{"pairwise over two hosts", func(o *OIDC) {
			o.PairwiseSalt = SecretValue("0123456789abcdef-salt")
			withClient(func(c *OIDCClient) {
				c.SubjectType = OIDCSubjectPairwise
				c.RedirectURIs = append(c.RedirectURIs, "https://other.example.ac.jp/cb")
			})(o)
		}, "oidc.clients[0].sector_identifier", "different hosts"},
		{"unknown token format", withClient(func(c *OIDCClient) { c.AccessTokenFormat = "paseto" }), "oidc.clients[0].access_token_format", "opaque, jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c.OIDC)
			expectValidation(t, c.Validate(), tt.wantPath, tt.wantMsg, true)
		})
	}
}

func TestParseOIDCSection(t *testing.T) {
	doc := requiredYAML + `
oidc:
  access_token_lifetime: 15m
  keys:
    algorithm: ES256
  claims:
    - name: eduperson_principal_name
      source: "attribute:uid"
      scope: eduperson_principal_name
      suffix: "@example.ac.jp"
  clients:
    - id: portal
      secret: {env: OIDC_TEST_SECRET}
      redirect_uris: ["https://portal.example.ac.jp/cb"]
      scopes: [openid, eduperson_principal_name, offline_access]
      require_mfa: true
    - id: cli
      token_endpoint_auth_method: none
      application_type: native
      redirect_uris: ["http://127.0.0.1/cb"]
`
	t.Setenv("OIDC_TEST_SECRET", strings.Repeat("x", 40))
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	o := cfg.OIDC
	if o.AccessTokenLifetime != 15*time.Minute || o.IDTokenLifetime != time.Hour || o.CodeLifetime != time.Minute {
		t.Errorf("lifetimes = %v/%v/%v", o.AccessTokenLifetime, o.IDTokenLifetime, o.CodeLifetime)
	}
	if o.Keys.Algorithm != OIDCAlgES256 || o.Keys.RotationPeriod != 30*24*time.Hour {
		t.Errorf("keys = %+v", o.Keys)
	}
	if len(o.Claims) != 1 || o.Claims[0].Suffix != "@example.ac.jp" {
		t.Errorf("listing claims must replace the defaults: %+v", o.Claims)
	}
	if got := o.Scopes(); !slices.Equal(got, []string{"openid", "offline_access", "eduperson_principal_name"}) {
		t.Errorf("Scopes() = %q", got)
	}
	if len(o.Clients) != 2 {
		t.Fatalf("clients = %+v", o.Clients)
	}
	portal, cli := o.Clients[0], o.Clients[1]
	if portal.Secret.Value() != strings.Repeat("x", 40) || portal.AuthMethod() != OIDCAuthBasic || !portal.RequireMFA ||
		portal.AppType() != OIDCAppWeb || portal.Subject() != OIDCSubjectPublic || portal.TokenFormat() != OIDCTokenOpaque {
		t.Errorf("portal = %+v", portal)
	}
	if !cli.IsPublic() || cli.AppType() != OIDCAppNative || !slices.Equal(cli.AllowedScopes(), DefaultOIDCClientScopes()) {
		t.Errorf("cli = %+v", cli)
	}
}

func TestParseOIDCUnknownClientKey(t *testing.T) {
	doc := requiredYAML + `
oidc:
  clients:
    - id: portal
      secret: "` + strings.Repeat("x", 40) + `"
      redirect_uri: ["https://portal.example.ac.jp/cb"]
`
	_, err := Parse([]byte(doc))
	fe := findFieldError(t, err, "oidc.clients[0].redirect_uri")
	if fe == nil || !strings.Contains(fe.Msg, `did you mean "redirect_uris"`) {
		t.Fatalf("want an unknown-key error with a suggestion, got %v", err)
	}
}

func TestOIDCACRMethods(t *testing.T) {
	acr := OIDCACR{Password: "urn:pwd", MFA: "urn:mfa", Methods: OIDCACRMethods{TOTP: "urn:app"}}
	for _, tc := range []struct {
		mfa    bool
		method string
		want   string
	}{
		{false, "", "urn:pwd"}, {true, "email_otp", "urn:mfa"}, {true, "totp", "urn:app"},
	} {
		if got := acr.For(tc.mfa, tc.method); got != tc.want {
			t.Errorf("For(%v, %q) = %q, want %q", tc.mfa, tc.method, got, tc.want)
		}
	}
	for acrValue, want := range map[string]bool{"urn:app": true, "urn:mfa": true, OIDCACRREFEDSMFA: true, "urn:pwd": false} {
		if acr.Demands(acrValue) != want {
			t.Errorf("Demands(%q) != %v", acrValue, want)
		}
	}
	c := Default()
	c.OIDC.ACR.Methods = OIDCACRMethods{EmailOTP: "has space", TOTP: c.OIDC.ACR.Password}
	v := &validator{}
	c.OIDC.ACR.validate(v, "oidc.acr")
	msgs := fmt.Sprint(v.errs)
	for _, want := range []string{"oidc.acr.methods.email_otp", "oidc.acr.methods.totp"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("validation lacks %s: %s", want, msgs)
		}
	}
}
