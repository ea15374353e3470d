package oidcprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
)

// OpenID Connect Back-Channel Logout 1.0 and Front-Channel Logout 1.0.
//
// A client with a backchannel_logout_uri gets a logout token POSTed from
// the server when the user's IdP session ends; one with a
// frontchannel_logout_uri is loaded in a frame of the IdP's logout page
// with iss and sid. Either way its ID tokens carry the session's sid.
//
// The first back-channel attempt runs while the logout page waits (each
// bounded by logout.backchannel.timeout, all clients at once); failures
// are retried in the background with doubling waits, in this process only:
// a restart drops the retries still waiting (the tokens they would carry
// are short-lived, and the user's results page already says the client
// may still be signed in).

const (
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	// logoutTokenLifetime: long enough for the client to check it, short
	// enough that a captured token is soon worthless. Each retry signs a
	// new token.
	logoutTokenLifetime = 2 * time.Minute
)

// logoutNotifier tells OIDC clients of a logout (idp.LogoutNotifier).
type logoutNotifier struct {
	p      *Provider
	client *http.Client
	cfg    config.BackchannelLogout
	// retries tracks the background retries, so tests and shutdown can
	// wait for them.
	retries sync.WaitGroup
	// sleep waits between attempts (tests shorten it through the config).
	sleep func(ctx context.Context, d time.Duration) bool
}

func newLogoutNotifier(p *Provider) *logoutNotifier {
	cfg := p.cfg.Logout.Backchannel
	return &logoutNotifier{
		p:   p,
		cfg: cfg,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// A logout endpoint that redirects is refused: the token is
			// for that URI only.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		sleep: func(ctx context.Context, d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
				return true
			}
		},
	}
}

// LogoutChannel: the back channel when the client registered one, else
// the front channel, else none.
func (n *logoutNotifier) LogoutChannel(part idp.Participant, _ string, _ int) (string, string, []string) {
	c, ok := n.p.storage.clients[part.ID]
	if !ok {
		return idp.ChannelNone, "", nil
	}
	switch {
	case c.cfg.BackchannelLogoutURI != "":
		return idp.ChannelBack, "", nil
	case c.cfg.FrontchannelLogoutURI != "":
		u, err := url.Parse(c.cfg.FrontchannelLogoutURI)
		if err != nil {
			return idp.ChannelNone, "", nil
		}
		q := u.Query()
		q.Set("iss", n.p.issuer)
		q.Set("sid", part.SID)
		u.RawQuery = q.Encode()
		return idp.ChannelFront, u.String(), []string{u.Scheme + "://" + u.Host}
	}
	return idp.ChannelNone, "", nil
}

// SendLogout makes the first attempt; on failure the retries go on in the
// background and report the end to the logout's record.
func (n *logoutNotifier) SendLogout(ctx context.Context, part idp.Participant, walkID string, i int) error {
	c, ok := n.p.storage.clients[part.ID]
	if !ok || c.cfg.BackchannelLogoutURI == "" {
		return errors.New("oidcprovider: client has no backchannel_logout_uri")
	}
	err := n.attempt(ctx, c, part)
	if err == nil {
		return nil
	}
	if n.cfg.Attempts <= 1 {
		// The logout records the failure itself (its record is not
		// written yet).
		n.p.log.ErrorContext(ctx, "back-channel logout not delivered", "client_id", part.ID, "attempts", 1, "error", err)
		return fmt.Errorf("%w: %w", idp.ErrLogoutNotRetried, err)
	}
	n.p.log.WarnContext(ctx, "back-channel logout failed; retrying", "client_id", part.ID, "attempt", 1, "error", err)
	bg := context.WithoutCancel(ctx)
	n.retries.Go(func() { n.retry(bg, c, part, walkID, i) })
	return err
}

func (n *logoutNotifier) retry(ctx context.Context, c *client, part idp.Participant, walkID string, i int) {
	wait := n.cfg.Backoff
	var err error
	for attempt := 2; attempt <= n.cfg.Attempts; attempt++ {
		if !n.sleep(ctx, wait) {
			return
		}
		wait *= 2
		if err = n.attempt(ctx, c, part); err == nil {
			n.p.log.InfoContext(ctx, "back-channel logout delivered", "client_id", part.ID, "attempt", attempt)
			n.record(ctx, part, walkID, i, idp.LogoutOK)
			return
		}
		n.p.log.WarnContext(ctx, "back-channel logout failed", "client_id", part.ID, "attempt", attempt, "error", err)
	}
	n.giveUp(ctx, part, walkID, i, n.cfg.Attempts, err)
}

// giveUp records a client that could not be told: logged, and through the
// logout's record audited and counted.
func (n *logoutNotifier) giveUp(ctx context.Context, part idp.Participant, walkID string, i, attempts int, err error) {
	n.p.log.ErrorContext(ctx, "back-channel logout not delivered", "client_id", part.ID, "attempts", attempts, "error", err)
	n.record(ctx, part, walkID, i, idp.LogoutFailed)
}

// record writes a retry's outcome to the logout's record. The record is
// written when the logout request commits, which a quick retry can
// precede: a missing record is looked for again for a few seconds.
func (n *logoutNotifier) record(ctx context.Context, part idp.Participant, walkID string, i int, result string) {
	var err error
	for try := 0; try < 20; try++ {
		if err = n.p.app.RecordLogoutResult(ctx, walkID, i, result); !errors.Is(err, idp.ErrLogoutWalkNotFound) {
			break
		}
		if !n.sleep(ctx, 250*time.Millisecond) {
			break
		}
	}
	if err != nil {
		n.p.log.WarnContext(ctx, "recording a logout result failed", "client_id", part.ID, "error", err)
	}
}

// attempt POSTs one freshly signed logout token (Back-Channel Logout 1.0
// section 2.5): the client answers 200 (or 204) when it ended the session.
func (n *logoutNotifier) attempt(ctx context.Context, c *client, part idp.Participant) error {
	token, err := n.p.logoutToken(ctx, c, part)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("oidcprovider: backchannel_logout_uri answered %d", resp.StatusCode)
	}
	return nil
}

// logoutToken signs a Logout Token: iss, aud, iat, exp, jti, events, sub
// and sid; never a nonce (section 2.4), and typ logout+jwt (section 2.4,
// so it cannot pass for an ID token).
func (p *Provider) logoutToken(ctx context.Context, c *client, part idp.Participant) (string, error) {
	// The client's own algorithm, as its ID tokens.
	key, err := p.storage.SigningKey(withSigningAlg(ctx, c.signingAlg))
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(),
		Key: jose.JSONWebKey{Key: key.Key(), KeyID: key.ID()}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		return "", err
	}
	now := p.now()
	claims := map[string]any{
		"iss":    p.issuer,
		"aud":    c.cfg.ID,
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenLifetime).Unix(),
		"jti":    randomToken(24),
		"events": map[string]any{backchannelEvent: map[string]any{}},
		"sid":    part.SID,
	}
	if part.Subject != "" {
		claims["sub"] = part.Subject
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// WaitForLogouts waits until the background back-channel retries are over
// (tests, graceful shutdown).
func (p *Provider) WaitForLogouts() { p.logout.retries.Wait() }
