package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/campusidp/campusidp/internal/testsmtp"
)

// target is one running IdP as the virtual browsers see it.
type target struct {
	base      *url.URL
	transport http.RoundTripper // the browsers' connections
	sink      *testsmtp.Server
	rp        *rp     // nil without an OIDC provider
	saml      *samlSP // nil without a SAML provider
	users     []*vuser
	// pwUsers never enrolled a second factor (password-only scenarios).
	pwUsers []*vuser
}

func (t *target) browser(u *vuser) *browser { return newBrowser(t.base, t.transport, u.ip()) }

// scenario is one kind of login the benchmark repeats.
type scenario struct {
	name string
	// oidc scenarios need the OIDC provider; they sign tokens, so they run
	// once per signing algorithm.
	oidc bool
	// saml scenarios need the SAML provider.
	saml bool
	// passwordOnly scenarios run with the users who never enrolled.
	passwordOnly bool
	desc         string
	// prepare runs once before the timed loop (e.g. to get refresh tokens).
	prepare func(ctx context.Context, t *target, workers int) error
	// once is one login (one iteration) of user u.
	once func(ctx context.Context, t *target, u *vuser) error
}

var scenarios = []scenario{
	{
		name: "login-trusted",
		desc: "password + trusted-browser cookie, to the account page /user/ (no token signed)",
		once: func(ctx context.Context, t *target, u *vuser) error {
			b := t.browser(u)
			b.setTrusted(u.trusted)
			p, _, err := login(ctx, b, t.sink, u, "/user/", factorTrusted)
			if err != nil {
				return err
			}
			return signedIn(p, u)
		},
	},
	{
		name: "login-email",
		desc: "password + mailed one-time password read from the SMTP sink, to /user/",
		once: func(ctx context.Context, t *target, u *vuser) error {
			p, _, err := login(ctx, t.browser(u), t.sink, u, "/user/", factorEmail)
			if err != nil {
				return err
			}
			return signedIn(p, u)
		},
	},
	{
		name: "oidc-trusted",
		oidc: true,
		desc: "OIDC code flow + PKCE: authorize, password, trusted browser, code, token, id_token verified",
		once: func(ctx context.Context, t *target, u *vuser) error {
			return oidcLogin(ctx, t, u, factorTrusted, "openid profile email")
		},
	},
	{
		name:         "oidc-password",
		oidc:         true,
		passwordOnly: true,
		desc:         "the same flow for users with no second factor: authorize, password, code, token, id_token verified",
		once: func(ctx context.Context, t *target, u *vuser) error {
			return oidcLogin(ctx, t, u, factorNone, "openid profile email")
		},
	},
	{
		name: "oidc-email",
		oidc: true,
		desc: "the same with a mailed one-time password instead of the trusted browser",
		once: func(ctx context.Context, t *target, u *vuser) error {
			return oidcLogin(ctx, t, u, factorEmail, "openid profile email")
		},
	},
	{
		name: "refresh",
		oidc: true,
		desc: "refresh-token grant (rotating), new id_token verified",
		prepare: func(ctx context.Context, t *target, workers int) error {
			return forEachUser(ctx, t.users, workers, func(ctx context.Context, u *vuser) error {
				return oidcLogin(ctx, t, u, factorTrusted, "openid profile offline_access")
			})
		},
		once: func(ctx context.Context, t *target, u *vuser) error {
			if u.refresh == "" {
				return errors.New("no refresh token (its chain broke earlier)")
			}
			tok, err := t.rp.refresh(ctx, u.refresh)
			if err != nil {
				u.refresh = ""
				return err
			}
			if tok.RefreshToken != "" {
				u.refresh = tok.RefreshToken
			}
			if tok.IDToken == "" {
				return nil
			}
			return t.rp.verify(ctx, tok.IDToken, u, "")
		},
	},
	{
		name: "saml",
		saml: true,
		desc: "SAML SSO: AuthnRequest (Redirect), password, trusted browser, signed response (POST) verified",
		once: func(ctx context.Context, t *target, u *vuser) error {
			authURL, err := t.saml.authURL()
			if err != nil {
				return err
			}
			b := t.browser(u)
			b.setTrusted(u.trusted)
			p, out, err := login(ctx, b, t.sink, u, authURL, factorTrusted)
			if err != nil {
				return err
			}
			if out != nil {
				return fmt.Errorf("redirected to %s instead of the POST form", out.Redacted())
			}
			return t.saml.consume(p, u)
		},
	},
}

// oidcLogin runs the authorization code flow for u and verifies the ID
// token; a refresh token, if issued, is kept in u.
func oidcLogin(ctx context.Context, t *target, u *vuser, mode factorMode, scopes string) error {
	b := t.browser(u)
	if mode == factorTrusted {
		b.setTrusted(u.trusted)
	}
	ar, authURL := t.rp.start(scopes)
	p, out, err := login(ctx, b, t.sink, u, authURL, mode)
	if err != nil {
		return err
	}
	if out == nil {
		return unexpected("a redirect to the relying party", p)
	}
	tok, err := t.rp.callback(ctx, ar, out)
	if err != nil {
		return err
	}
	if err := t.rp.verify(ctx, tok.IDToken, u, ar.nonce); err != nil {
		return err
	}
	u.refresh = tok.RefreshToken
	return nil
}

// forEachUser runs fn for every user, workers at a time, and returns the
// first error.
func forEachUser(ctx context.Context, users []*vuser, workers int, fn func(context.Context, *vuser) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan *vuser)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				if err := fn(ctx, u); err != nil {
					once.Do(func() {
						firstErr = fmt.Errorf("%s: %w", u.account.ID, err)
						cancel()
					})
				}
			}
		}()
	}
feed:
	for _, u := range users {
		select {
		case next <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
