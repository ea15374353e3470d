package main

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/ldapstore"
)

func TestWithSAMLAttributes(t *testing.T) {
	mapping := []config.SAMLAttribute{
		{Name: "a", LDAP: "eduPersonAffiliation"},
		{Name: "b", LDAP: "displayName;lang-ja"},
		{Name: "c", LDAP: "MAIL"},
	}
	cases := []struct {
		name    string
		enabled bool
		extra   []string
		want    []string
	}{
		{"disabled adds nothing", false, []string{"employeeNumber"}, []string{"employeeNumber"}},
		{"enabled adds the mapping's attributes", true, nil, []string{"eduPersonAffiliation", "displayName;lang-ja", "MAIL"}},
		{"names already fetched are not repeated (case-insensitive)", true, []string{"mail", "DisplayName;Lang-JA"},
			[]string{"mail", "DisplayName;Lang-JA", "eduPersonAffiliation"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := ldapstore.Config{Attributes: ldapstore.Attributes{Extra: tc.extra}}
			out := withSAMLAttributes(in, config.SAML{Enabled: tc.enabled, Attributes: mapping})
			if !reflect.DeepEqual(out.Attributes.Extra, tc.want) {
				t.Errorf("extra = %q, want %q", out.Attributes.Extra, tc.want)
			}
			if len(tc.extra) > 0 && &in.Attributes.Extra[0] == &out.Attributes.Extra[0] && tc.enabled {
				t.Error("the caller's slice was modified")
			}
		})
	}
}

// TestDevPublishesSAMLMetadata: `idp dev` runs the SAML IdP with a key it
// generated and kept in its store.
func TestDevPublishesSAMLMetadata(t *testing.T) {
	dev := startDev(t)
	base, stdout := dev.base, &dev.stdout
	defer dev.stop(t)
	if !strings.Contains(stdout.String(), base+"/saml/metadata") {
		t.Errorf("idp dev does not print the SAML metadata URL:\n%s", stdout.String())
	}
	resp, err := http.Get(base + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`entityID="` + base + `/saml/metadata"`, "X509Certificate", "demo.example", base + "/saml/sso"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("metadata (%d) lacks %q:\n%s", resp.StatusCode, want, body)
		}
	}
}
