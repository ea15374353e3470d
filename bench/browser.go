package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

const (
	trustedCookie = "idp_trusted"
	maxHops       = 12
)

// browser is one virtual browser: its own cookie jar and client address,
// redirects seen one by one (as a browser follows them).
type browser struct {
	base   *url.URL
	client *http.Client
	jar    http.CookieJar
	ip     string // sent as X-Forwarded-For
}

func newBrowser(base *url.URL, transport http.RoundTripper, ip string) *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &browser{
		base: base,
		jar:  jar,
		ip:   ip,
		client: &http.Client{
			Transport:     transport,
			Jar:           jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// setTrusted puts a trusted-browser cookie into the jar, as a browser that
// ticked "Trust this browser" earlier keeps it.
func (b *browser) setTrusted(token string) {
	b.jar.SetCookies(b.base, []*http.Cookie{{Name: trustedCookie, Value: token, Path: "/"}})
}

func (b *browser) cookie(name string) string {
	for _, c := range b.jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// page is one response, body read.
type page struct {
	url      *url.URL
	status   int
	body     string
	location string
}

func (b *browser) do(ctx context.Context, method, target string, form url.Values) (page, error) {
	u, err := b.base.Parse(target)
	if err != nil {
		return page{}, err
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Forwarded-For", b.ip)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) idp-bench Firefox/140.0")
	resp, err := b.client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return page{}, fmt.Errorf("%s %s: reading body: %w", method, u.Path, err)
	}
	return page{url: u, status: resp.StatusCode, body: string(raw), location: resp.Header.Get("Location")}, nil
}

func (b *browser) get(ctx context.Context, target string) (page, error) {
	return b.do(ctx, http.MethodGet, target, nil)
}

func (b *browser) post(ctx context.Context, target string, form url.Values) (page, error) {
	return b.do(ctx, http.MethodPost, target, form)
}

// errLeftIdP carries the URL of a hop outside the IdP (the relying party).
type errLeftIdP struct{ URL *url.URL }

func (e *errLeftIdP) Error() string { return "left the IdP for " + e.URL.Redacted() }

var metaRefreshRe = regexp.MustCompile(`(?i)<meta http-equiv="refresh" content="0;\s*url=([^"]*)"`)

// follow walks redirects (and the IdP's meta-refresh "continue" page) on the
// IdP's origin until a page that stays. A hop to another origin ends the walk
// with that URL: the bench never contacts the relying party's address.
func (b *browser) follow(ctx context.Context, p page) (page, *url.URL, error) {
	for range maxHops {
		next := ""
		switch {
		case p.status >= 300 && p.status < 400:
			next = p.location
		case p.status == http.StatusOK:
			if m := metaRefreshRe.FindStringSubmatch(p.body); m != nil {
				next = html.UnescapeString(m[1])
			}
		}
		if next == "" {
			return p, nil, nil
		}
		u, err := p.url.Parse(next)
		if err != nil {
			return p, nil, fmt.Errorf("bad redirect %q: %w", next, err)
		}
		if u.Scheme != b.base.Scheme || u.Host != b.base.Host {
			return p, u, nil
		}
		if p, err = b.get(ctx, u.RequestURI()); err != nil {
			return p, nil, err
		}
	}
	return p, nil, errors.New("too many redirects")
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([A-Za-z_]+)" value="([^"]*)">`)

// hidden returns the hidden form fields of a page.
func (p page) hidden() map[string]string {
	out := map[string]string{}
	for _, m := range hiddenRe.FindAllStringSubmatch(p.body, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// unexpected describes a page that is not the one a step expected.
func unexpected(want string, p page) error {
	snippet := p.body
	if i := strings.Index(snippet, `class="alert`); i >= 0 {
		snippet = snippet[i:]
	}
	if len(snippet) > 300 {
		snippet = snippet[:300]
	}
	return fmt.Errorf("expected %s, got %d at %s: %q", want, p.status, p.url.Path, snippet)
}
