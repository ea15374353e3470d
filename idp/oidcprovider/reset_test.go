package oidcprovider_test

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/internal/testldap"
)

var resetLinkRe = regexp.MustCompile(`<a href="(/reset\?tx=[^"]+)">`)

// A user who loses the factor during an application's login resets it
// from the MFA page and, after registering a new address, continues that
// login back to the application.
func TestResetBegunFromAnApplicationReturnsToIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, mfaRequired)
	web := e.rp("web")
	alice := testldap.Alice
	const oldAddr, newAddr = "lost.mailbox@example.org", "alice.new@example.org"

	first := e.browser()
	f := web.start()
	p := first.enroll(first.password(first.Follow(first.Get(f.url)), alice), oldAddr)
	web.codeFrom(p, f)

	b := e.browser()
	f = web.start()
	p = b.password(b.Follow(b.Get(f.url)), alice)
	m := resetLinkRe.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("the MFA page has no reset link carrying the login:\n%s", p.Body)
	}
	p = b.Get(html.UnescapeString(m[1]))
	p = b.Follow(b.submit(p, "/reset/login", url.Values{"username": {alice.ID}, "password": {alice.Password}}))
	p = b.Follow(b.submit(p, "/reset/init", nil))
	code := testenv.CodeIn(t, testenv.NewestMail(t, e.smtp, oldAddr, testenv.ResetSubject))
	p = b.Follow(b.submit(p, "/reset/confirm", url.Values{"code": {code}}))
	before := e.mailCount(newAddr)
	p = b.Follow(b.submit(p, "/user/otp/email/send", url.Values{"address": {newAddr}}))
	e.waitMails(newAddr, before+1)
	p = b.Follow(b.submit(p, "/user/otp/email/confirm", url.Values{"code": {e.codeFrom(newAddr)}}))
	if !strings.Contains(p.Body, "Continue signing in") || strings.Contains(p.Body, "log out") {
		t.Fatalf("the completed reset does not lead back to the application's login:\n%s", p.Body)
	}
	next := buttonRe.FindStringSubmatch(p.Body)
	p = b.Follow(b.Get(html.UnescapeString(next[1])))
	// The reset grant is no login: the password and the new factor are asked.
	before = e.mailCount(newAddr)
	p = b.password(p, alice)
	e.waitMails(newAddr, before+1) // the login code goes to the new address
	web.codeFrom(b.mailedCode(p, newAddr), f)
}
