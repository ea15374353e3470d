package testenv_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/campusidp/campusidp/internal/testenv"
)

// site is a small server with the shapes of answers the IdP gives: a form
// with hidden fields, a cookie, redirect chains within the site and to
// another site, and a redirect loop.
func site(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s1", Path: "/"})
		fmt.Fprint(w, `<form method="post" action="/submit"><input type="hidden" name="csrf_token" value="a&amp;b">`+
			`<input type="hidden" name="RelayState" value="r1"></form>`)
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("sid")
		if err != nil || r.PostFormValue("csrf_token") != "a&b" {
			http.Error(w, "bad", http.StatusForbidden)
			return
		}
		http.Redirect(w, r, "/hop1?sid="+c.Value, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /hop1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/done?"+r.URL.RawQuery, http.StatusFound)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "done "+r.URL.RawQuery) })
	mux.HandleFunc("GET /away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://rp.example/cb?code=1", http.StatusFound)
	})
	mux.HandleFunc("GET /loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowserFormsCookiesAndRedirects(t *testing.T) {
	srv := site(t)
	b := testenv.NewBrowser(t, srv.URL)
	form := b.Get("/form")
	if got := form.Hidden(t, "csrf_token"); got != "a&b" {
		t.Fatalf("Hidden(csrf_token) = %q, want the unescaped value", got)
	}
	if got, ok := form.HiddenOK("RelayState"); !ok || got != "r1" {
		t.Fatalf("HiddenOK(RelayState) = %q, %v", got, ok)
	}
	if _, ok := form.HiddenOK("tx"); ok {
		t.Fatal("HiddenOK found a field that is not there")
	}
	if b.Cookie("sid") != "s1" {
		t.Fatalf("cookie sid = %q, want s1", b.Cookie("sid"))
	}

	cases := []struct {
		name       string
		start      testenv.Page
		wantStatus int
		wantBody   string
		wantLoc    string
	}{
		{"within the site, relative and absolute", b.Post("/submit", url.Values{"csrf_token": {"a&b"}}),
			http.StatusOK, "done sid=s1", ""},
		{"stops at another site", b.Get("/away"), http.StatusFound, "", "https://rp.example/cb?code=1"},
		{"a loop ends as a redirect", b.Get("/loop"), http.StatusFound, "", "/loop"},
		{"a page is left as it is", b.Get("/done?x"), http.StatusOK, "done x", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Follow(tc.start)
			if p.Status != tc.wantStatus || p.Body != tc.wantBody && tc.wantBody != "" || p.Location != tc.wantLoc {
				t.Fatalf("Follow: %d %q Location %q; want %d %q Location %q", p.Status, p.Body, p.Location,
					tc.wantStatus, tc.wantBody, tc.wantLoc)
			}
		})
	}
}
