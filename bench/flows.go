package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// vuser is one directory account and what its browser keeps between logins.
type vuser struct {
	index   int
	account testldap.User
	// trusted is the "Trust this browser" cookie set at enrollment.
	trusted string
	// refresh is the latest refresh token of this user's RP session.
	refresh string
}

func (u *vuser) otpAddress() string { return u.account.ID + "@" + otpAddressHost }

// ip is the user's client address, told in X-Forwarded-For: each user
// counts against its own per-address password budget, as on a campus.
func (u *vuser) ip() string {
	i := u.index + 1
	return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)
}

// Page markers: the actions of the forms each page carries.
const (
	markLoginForm = `action="/login"`
	markMFAEmail  = `action="/mfa/verify"`
	markEnroll    = `action="/user/otp/email/send"`
	markConfirm   = `action="/user/otp/email/confirm"`
	markSignedIn  = `action="/logout"`
)

var codeRe = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// mailedCode waits for the next mail to addr and returns its code.
func mailedCode(ctx context.Context, sink *testsmtp.Server, addr string) (string, error) {
	m, err := sink.Receive(ctx, addr)
	if err != nil {
		return "", err
	}
	match := codeRe.FindStringSubmatch(m.Text)
	if match == nil {
		return "", fmt.Errorf("no code in the mail %q to %s", m.Subject, addr)
	}
	return match[1], nil
}

// drainMail drops mails to addr left over from an earlier, failed login, so
// the next code read is this login's.
func drainMail(sink *testsmtp.Server, addr string) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		if _, err := sink.Receive(done, addr); err != nil {
			return
		}
	}
}

// factorMode is how a login passes the second factor.
type factorMode int

const (
	factorTrusted       factorMode = iota // the trusted-browser cookie
	factorEmail                           // a mailed one-time password, read from the sink
	factorEmailAndTrust                   // the same, ticking "Trust this browser"
	factorNone                            // none: a user who never enrolled logs in with the password alone
)

// login opens start (a page that needs a login), signs in as u with the
// password and passes the factor. It returns the page the login ends on, or
// the URL outside the IdP it sent the browser to (an RP's redirect URI).
func login(ctx context.Context, b *browser, sink *testsmtp.Server, u *vuser, start string, mode factorMode) (page, *url.URL, error) {
	p, err := b.get(ctx, start)
	if err != nil {
		return p, nil, err
	}
	p, out, err := b.follow(ctx, p)
	if err != nil || out != nil {
		return p, out, err
	}
	if !strings.Contains(p.body, markLoginForm) {
		return p, nil, unexpected("the login form", p)
	}
	h := p.hidden()
	if mode != factorTrusted && mode != factorNone {
		drainMail(sink, u.otpAddress())
	}
	p, err = b.post(ctx, "/login", url.Values{
		"csrf_token": {h["csrf_token"]}, "tx": {h["tx"]},
		"username": {u.account.ID}, "password": {u.account.Password},
	})
	if err != nil {
		return p, nil, err
	}
	if p, out, err = b.follow(ctx, p); err != nil || out != nil {
		return p, out, err
	}
	if !strings.Contains(p.body, markMFAEmail) {
		return p, nil, nil
	}
	if mode == factorTrusted || mode == factorNone {
		return p, nil, unexpected("no MFA page with a trusted browser or without a second factor", p)
	}
	code, err := mailedCode(ctx, sink, u.otpAddress())
	if err != nil {
		return p, nil, err
	}
	h = p.hidden()
	form := url.Values{"csrf_token": {h["csrf_token"]}, "tx": {h["tx"]}, "method": {"email_otp"}, "code": {code}}
	if mode == factorEmailAndTrust {
		form.Set("trust", "1")
	}
	if p, err = b.post(ctx, "/mfa/verify", form); err != nil {
		return p, nil, err
	}
	return b.follow(ctx, p)
}

// signedIn checks that p is the account page of u.
func signedIn(p page, u *vuser) error {
	if p.status != 200 || !strings.Contains(p.body, markSignedIn) || !strings.Contains(p.body, u.account.ID) {
		return unexpected("the account page of "+u.account.ID, p)
	}
	return nil
}

// enroll registers u's private address as its second factor and then logs
// in once more with the mailed code, ticking "Trust this browser", so that
// u.trusted holds the cookie every trusted-browser login presents.
func enroll(ctx context.Context, base *url.URL, rt http.RoundTripper, sink *testsmtp.Server, u *vuser) error {
	b := newBrowser(base, rt, u.ip())
	p, _, err := login(ctx, b, sink, u, "/user/", factorEmail)
	if err != nil {
		return err
	}
	if !strings.Contains(p.body, markEnroll) {
		// mfa.enrollment is optional (for the password-only users): the
		// login ends on the account page, and the user opens the
		// one-time password settings from there.
		if err := signedIn(p, u); err != nil {
			return err
		}
		if p, err = b.get(ctx, "/user/otp"); err != nil {
			return err
		}
		if p, _, err = b.follow(ctx, p); err != nil {
			return err
		}
	}
	if !strings.Contains(p.body, markEnroll) {
		return unexpected("the one-time password settings page", p)
	}
	h := p.hidden()
	drainMail(sink, u.otpAddress())
	if p, err = b.post(ctx, "/user/otp/email/send", url.Values{
		"csrf_token": {h["csrf_token"]}, "tx": {h["tx"]}, "address": {u.otpAddress()},
	}); err != nil {
		return err
	}
	if p, _, err = b.follow(ctx, p); err != nil {
		return err
	}
	if !strings.Contains(p.body, markConfirm) {
		return unexpected("the code confirmation form", p)
	}
	code, err := mailedCode(ctx, sink, u.otpAddress())
	if err != nil {
		return err
	}
	h = p.hidden()
	if p, err = b.post(ctx, "/user/otp/email/confirm", url.Values{
		"csrf_token": {h["csrf_token"]}, "tx": {h["tx"]}, "code": {code},
	}); err != nil {
		return err
	}
	if p, _, err = b.follow(ctx, p); err != nil {
		return err
	}
	if p.status != 200 {
		return unexpected("the settings-complete page", p)
	}

	b = newBrowser(base, rt, u.ip())
	if p, _, err = login(ctx, b, sink, u, "/user/", factorEmailAndTrust); err != nil {
		return err
	}
	if err := signedIn(p, u); err != nil {
		return err
	}
	if u.trusted = b.cookie(trustedCookie); u.trusted == "" {
		return errors.New("no trusted-browser cookie after ticking Trust this browser")
	}
	return nil
}
