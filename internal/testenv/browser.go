package testenv

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Page is one answer the Browser got.
type Page struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
	// URL is the address that was requested, for failure messages.
	URL string
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([A-Za-z_]+)" value="([^"]*)">`)

// HiddenOK returns the (unescaped) value of a hidden form field on the
// page and whether there is one.
func (p Page) HiddenOK(name string) (string, bool) {
	for _, m := range hiddenRe.FindAllStringSubmatch(p.Body, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2]), true
		}
	}
	return "", false
}

// Hidden returns the value of a hidden form field on the page and fails
// the test when there is none.
func (p Page) Hidden(t testing.TB, name string) string {
	t.Helper()
	if v, ok := p.HiddenOK(name); ok {
		return v
	}
	t.Fatalf("no hidden field %q on the page (status %d, %s):\n%s", name, p.Status, p.URL, p.Body)
	return ""
}

// Browser is a cookie-keeping HTTP client that does not follow redirects on
// its own, so tests see (and can assert on) every hop.
type Browser struct {
	t testing.TB
	// Base is the origin relative targets are resolved against and the
	// site Follow stays on.
	Base   string
	Client *http.Client
	Jar    *cookiejar.Jar
}

// NewBrowser returns a browser with an empty cookie jar for the site at
// base (scheme://host:port).
func NewBrowser(t testing.TB, base string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Base: strings.TrimRight(base, "/"), Jar: jar, Client: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Browser returns a new browser for the env's IdP.
func (e *Env) Browser() *Browser { return NewBrowser(e.t, e.Server.URL) }

// Abs resolves a path ("/login") against Base; absolute URLs stay as they are.
func (b *Browser) Abs(target string) string {
	if strings.HasPrefix(target, "/") {
		return b.Base + target
	}
	return target
}

// Do sends req and reads the whole answer; a transport error fails the test.
func (b *Browser) Do(req *http.Request) Page {
	b.t.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return Page{Status: resp.StatusCode, Body: string(body), Location: resp.Header.Get("Location"),
		Header: resp.Header, URL: req.URL.String()}
}

// Get fetches a path of Base or an absolute URL.
func (b *Browser) Get(target string) Page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.Abs(target), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.Do(req)
}

// Post submits form, URL-encoded, to a path of Base or an absolute URL.
func (b *Browser) Post(target string, form url.Values) Page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.Abs(target), strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// followHops bounds Follow, so a redirect loop ends as a redirect page
// the test can report instead of hanging.
const followHops = 15

// Follow GETs redirects within Base until a page that is not a redirect.
// It stops at a redirect to another site (a relying party, a service
// provider), which the test inspects itself.
func (b *Browser) Follow(p Page) Page {
	b.t.Helper()
	for i := 0; i < followHops && p.Status >= 300 && p.Status < 400; i++ {
		loc, err := url.Parse(p.Location)
		if err != nil {
			b.t.Fatalf("bad Location %q", p.Location)
		}
		if loc.IsAbs() && loc.Scheme+"://"+loc.Host != b.Base {
			return p
		}
		p = b.Get(loc.RequestURI())
	}
	return p
}

// Cookie returns the value of the cookie called name that the browser
// holds for Base, or "".
func (b *Browser) Cookie(name string) string {
	u, err := url.Parse(b.Base)
	if err != nil {
		return ""
	}
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
