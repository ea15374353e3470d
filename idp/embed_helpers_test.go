package idp_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
)

// The helpers of the embedding examples and tests: what a program brings
// itself (a directory, a mailer) and a scripted browser. They use only the
// public API, as a program outside the module would.

// memDirectory is an in-memory account directory.
type memDirectory map[string]memAccount

type memAccount struct {
	password string
	user     ldapstore.User
}

func (d memDirectory) Authenticate(_ context.Context, id, password string) (*ldapstore.User, error) {
	acct, ok := d[id]
	if !ok || password == "" || password != acct.password {
		return nil, ldapstore.ErrInvalidCredentials
	}
	u := acct.user
	return &u, nil
}

func (d memDirectory) Lookup(_ context.Context, id string) (*ldapstore.User, error) {
	acct, ok := d[id]
	if !ok {
		return nil, ldapstore.ErrUserNotFound
	}
	u := acct.user
	return &u, nil
}

// twoUsers is the directory of the examples.
func twoUsers() memDirectory {
	return memDirectory{
		"alice": {password: "correct horse", user: ldapstore.User{ID: "alice", DisplayName: "Alice Example", Mail: "alice@example.ac.jp"}},
		"bob":   {password: "battery staple", user: ldapstore.User{ID: "bob", DisplayName: "Bob Example", Mail: "bob@example.ac.jp"}},
	}
}

// mailbox is a Mailer that keeps the last code per address and prints a
// line for every mail, without the code.
type mailbox struct {
	mu       sync.Mutex
	codes    map[string]string
	lastText string
	out      io.Writer
}

var mailCodeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

func (m *mailbox) Send(_ context.Context, msg idp.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.codes == nil {
		m.codes = map[string]string{}
	}
	m.lastText = msg.Text
	if c := mailCodeRe.FindStringSubmatch(msg.Text); c != nil {
		m.codes[msg.To] = c[1]
	}
	if m.out != nil {
		fmt.Fprintf(m.out, "mail to %s: %s\n", msg.To, msg.Subject)
	}
	return nil
}

func (m *mailbox) code(to string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.codes[to]
}

// tempDB returns a path for a SQLite file in a fresh directory, and a
// function that removes it.
func tempDB() (string, func()) {
	dir, err := os.MkdirTemp("", "idp-example-")
	if err != nil {
		panic(err)
	}
	return filepath.Join(dir, "idp.db"), func() { os.RemoveAll(dir) }
}

// webBrowser follows the IdP's pages the way a person would.
type webBrowser struct {
	base   string
	client *http.Client
	last   string // body of the last page
	url    string // URL of the last page
}

func newWebBrowser(base string) *webBrowser {
	jar, _ := cookiejar.New(nil)
	return &webBrowser{base: base, client: &http.Client{Jar: jar}}
}

func (b *webBrowser) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.base + path
}

func (b *webBrowser) done(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.last, b.url = string(body), resp.Request.URL.String()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s: status %d", resp.Request.URL.Path, resp.StatusCode)
	}
	return nil
}

func (b *webBrowser) get(path string) error { return b.done(b.client.Get(b.abs(path))) }

var hiddenInputRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// post submits the form of the last page whose action is action, with the
// page's hidden fields and the given values.
func (b *webBrowser) post(action string, values url.Values) error {
	i := strings.Index(b.last, `action="`+action+`"`)
	if i < 0 {
		return fmt.Errorf("no form for %s on %s", action, b.url)
	}
	form := url.Values{}
	rest := b.last[i:]
	if end := strings.Index(rest, "</form>"); end >= 0 {
		rest = rest[:end]
	}
	for _, m := range hiddenInputRe.FindAllStringSubmatch(rest, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range values {
		form[k] = v
	}
	return b.done(b.client.PostForm(b.abs(action), form))
}

// signIn logs id in from page path (it must lead to the login form):
// password, then the second factor by mail, registering addr first when
// the account has no factor yet.
func (b *webBrowser) signIn(path, id, password string, mail *mailbox, addr string) error {
	if err := b.get(path); err != nil {
		return err
	}
	if err := b.post("/login", url.Values{"username": {id}, "password": {password}}); err != nil {
		return err
	}
	switch {
	case strings.Contains(b.last, `action="/user/otp/email/send"`):
		// First login: register the address, confirm it with the mailed code.
		if err := b.post("/user/otp/email/send", url.Values{"address": {addr}}); err != nil {
			return err
		}
		if err := b.post("/user/otp/email/confirm", url.Values{"code": {mail.code(addr)}}); err != nil {
			return err
		}
	case strings.Contains(b.last, `action="/mfa/verify"`):
		if err := b.post("/mfa/verify", url.Values{"code": {mail.code(addr)}}); err != nil {
			return err
		}
	default:
		return errors.New("neither enrollment nor the code page after the password: " + b.url)
	}
	return nil
}
