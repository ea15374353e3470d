package samlprovider

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/config"
)

func deflated(t *testing.T, data []byte) string {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(data)
	_ = fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestReadMessage(t *testing.T) {
	p := &Provider{cfg: config.SAML{MaxRequestBytes: 4096, MaxInflatedBytes: 8192}}
	xmlDoc := []byte("<samlp:AuthnRequest/>")
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	cases := []struct {
		name    string
		method  string
		query   string
		body    string
		wantErr error
		check   func(t *testing.T, m *message)
	}{
		{"redirect", http.MethodGet, q("SAMLRequest", deflated(t, xmlDoc), "RelayState", "r&s"), "", nil, func(t *testing.T, m *message) {
			if !bytes.Equal(m.xml, xmlDoc) || m.relayState != "r&s" || m.querySigned {
				t.Errorf("got %q %q signed=%v", m.xml, m.relayState, m.querySigned)
			}
		}},
		{"redirect signed: octets as sent, in protocol order", http.MethodGet,
			"Signature=c2ln&SigAlg=alg%2Bx&SAMLRequest=" + url.QueryEscape(deflated(t, xmlDoc)) + "&RelayState=a%20b", "", nil,
			func(t *testing.T, m *message) {
				want := "SAMLRequest=" + url.QueryEscape(deflated(t, xmlDoc)) + "&RelayState=a%20b&SigAlg=alg%2Bx"
				if string(m.signedQuery) != want || m.sigAlg != "alg+x" || string(m.signature) != "sig" {
					t.Errorf("signed octets %q, alg %q, sig %q", m.signedQuery, m.sigAlg, m.signature)
				}
			}},
		{"redirect without request", http.MethodGet, q("RelayState", "x"), "", errMalformed, nil},
		{"parameter twice", http.MethodGet, q("SAMLRequest", deflated(t, xmlDoc)) + "&" + q("SAMLRequest", deflated(t, xmlDoc)), "", errMalformed, nil},
		{"not base64", http.MethodGet, q("SAMLRequest", "!!!"), "", errMalformed, nil},
		{"not deflate", http.MethodGet, q("SAMLRequest", base64.StdEncoding.EncodeToString([]byte("plain text"))), "", errMalformed, nil},
		{"encoded too large", http.MethodGet, q("SAMLRequest", strings.Repeat("QUFB", 1025)), "", errTooLarge, nil},
		{"inflates too large", http.MethodGet, q("SAMLRequest", deflated(t, bytes.Repeat([]byte("a"), 8193))), "", errTooLarge, nil},
		{"inflates to the limit", http.MethodGet, q("SAMLRequest", deflated(t, bytes.Repeat([]byte("a"), 8192))), "", nil, nil},
		{"relay state too long", http.MethodGet, q("SAMLRequest", deflated(t, xmlDoc), "RelayState", strings.Repeat("x", maxRelayState+1)), "", errTooLarge, nil},
		{"post", http.MethodPost, "", q("SAMLRequest", base64.StdEncoding.EncodeToString(xmlDoc), "RelayState", "s"), nil, func(t *testing.T, m *message) {
			if !bytes.Equal(m.xml, xmlDoc) || m.relayState != "s" || m.binding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" {
				t.Errorf("got %q %q %s", m.xml, m.relayState, m.binding)
			}
		}},
		{"post with line breaks in base64", http.MethodPost, "", q("SAMLRequest", "PHNhbWxwOkF1dGhu\r\nUmVxdWVzdC8+"), nil, func(t *testing.T, m *message) {
			if !bytes.Equal(m.xml, xmlDoc) {
				t.Errorf("got %q", m.xml)
			}
		}},
		{"post body too large", http.MethodPost, "", q("SAMLRequest", strings.Repeat("QUFB", 3000)), errTooLarge, nil},
		{"post request field too large", http.MethodPost, "", q("SAMLRequest", strings.Repeat("QUFB", 1100)), errTooLarge, nil},
		{"post twice", http.MethodPost, "", q("SAMLRequest", "YQ==", "SAMLRequest", "Yg=="), errMalformed, nil},
		{"put", http.MethodPut, "", "", errMalformed, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/saml/sso?"+tc.query, strings.NewReader(tc.body))
			if tc.method == http.MethodPost {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			m, err := p.readMessage(httptest.NewRecorder(), r, "SAMLRequest")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}
