// Package consent is the attribute-release consent step (uApprove.jp
// style): after the factor step and before a SAML assertion or an OIDC
// code, the user sees which service gets which attributes (with their
// values and the service's terms of use), ticks the optional ones, and may
// let the IdP remember the answer for that service. Remembered consents
// are listed on /user/ with a revoke button.
//
// It works over the login core's exported API: Mount plugs it into the app
// (idp.App.SetConsent), and the protocol front-ends ask it through
// idp.ConsentGate. Without it mounted, front-ends release without asking.
package consent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/store"
)

const (
	// recordAsk keeps a request waiting on the consent page, then the
	// answer until the front-end takes it.
	recordAsk = "consent_ask"
	// recordUser keeps one user's remembered consents, keyed by service.
	recordUser = "consent_user"

	// PathConsent is the consent page.
	PathConsent = "/consent"
	// PathRevoke forgets a remembered consent (a form on /user/).
	PathRevoke = "/user/consents/revoke"
)

// Store is the persistence the step needs: the app's expiring records.
type Store interface {
	PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error
	GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error
}

// Consent is the mounted consent step.
type Consent struct {
	app   *idp.App
	store Store
	log   *slog.Logger
	cfg   config.Consent
	// askLifetime is how long a question waits: as long as a login may take.
	askLifetime time.Duration
}

var _ idp.ConsentGate = (*Consent)(nil)

// Mount plugs the consent step into app and serves its pages.
func Mount(app *idp.App, logger *slog.Logger) (*Consent, error) {
	if app == nil {
		return nil, errors.New("consent: an app is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := app.Config()
	c := &Consent{
		app:         app,
		store:       app.Store(),
		log:         logger.With("component", "consent"),
		cfg:         cfg.Consent,
		askLifetime: cfg.Security.LoginTxLifetime,
	}
	if err := app.AddPages("consent", "consent_declined"); err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	app.Handle("GET "+PathConsent, httpHandler(c.handlePage))
	app.Handle("POST "+PathConsent, httpHandler(c.handleAnswer))
	app.Handle("POST "+PathRevoke, httpHandler(c.handleRevoke))
	app.SetConsent(c)
	return c, nil
}

// ask is a question on the consent page and, once given, its answer.
type ask struct {
	UserID   string             `json:"user_id"`
	Request  idp.ConsentRequest `json:"request"`
	Answered bool               `json:"answered,omitempty"`
	Taken    bool               `json:"taken,omitempty"`
	Result   idp.ConsentResult  `json:"result"`
}

// remembered is one service's remembered consent.
type remembered struct {
	Protocol string           `json:"protocol"`
	Service  string           `json:"service"`
	Name     config.Localized `json:"name"`
	// RequestDigest covers what was asked (the items and which are
	// required); ValuesDigest the values of the released items.
	RequestDigest string    `json:"request_digest"`
	ValuesDigest  string    `json:"values_digest"`
	Released      []string  `json:"released"`
	Given         time.Time `json:"given"`
	Expires       time.Time `json:"expires"`
}

// userConsents is the record of one user: service key → consent.
type userConsents map[string]remembered

func serviceKey(protocol, service string) string { return protocol + " " + service }

// requestDigest identifies the set of requested items: a change (an
// attribute added, or one turning required) asks again.
func requestDigest(req idp.ConsentRequest) string {
	lines := make([]string, 0, len(req.Items))
	for _, it := range req.Items {
		lines = append(lines, fmt.Sprintf("%q %t", it.Key, it.Required))
	}
	slices.Sort(lines)
	return digest(append([]string{req.Protocol, req.Service}, lines...))
}

// valuesDigest identifies the values of the released items: the user
// agreed to send these values, not whatever the directory says next year.
func valuesDigest(req idp.ConsentRequest, released []string) string {
	var lines []string
	for _, it := range req.Items {
		if !slices.Contains(released, it.Key) {
			continue
		}
		vals := slices.Clone(it.Values)
		slices.Sort(vals)
		lines = append(lines, fmt.Sprintf("%q %q", it.Key, vals))
	}
	slices.Sort(lines)
	return digest(lines)
}

func digest(lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func allKeys(req idp.ConsentRequest) []string {
	keys := make([]string, 0, len(req.Items))
	for _, it := range req.Items {
		keys = append(keys, it.Key)
	}
	return keys
}

// Decide implements idp.ConsentGate.
func (c *Consent) Decide(ctx context.Context, userID string, req idp.ConsentRequest) (*idp.ConsentResult, string, error) {
	if req.Mode == "" || req.Mode == config.ConsentNone {
		return &idp.ConsentResult{Released: allKeys(req)}, "", nil
	}
	if len(req.Items) == 0 && req.Terms == (config.Localized{}) {
		// Nothing to show: the service gets no attributes and has no
		// terms to accept.
		return &idp.ConsentResult{}, "", nil
	}
	if req.ReturnTo == "" || !strings.HasPrefix(req.ReturnTo, "/") || strings.HasPrefix(req.ReturnTo, "//") {
		return nil, "", fmt.Errorf("consent: ReturnTo must be a local path, got %q", req.ReturnTo)
	}
	now := c.app.Now()
	if req.Mode == config.ConsentOnce && !req.Ask {
		all, err := c.load(ctx, userID)
		if err != nil {
			return nil, "", err
		}
		if r, ok := all[serviceKey(req.Protocol, req.Service)]; ok && now.Before(r.Expires) &&
			r.RequestDigest == requestDigest(req) && r.ValuesDigest == valuesDigest(req, r.Released) {
			return &idp.ConsentResult{Released: slices.Clone(r.Released)}, "", nil
		}
	}
	id := randomID()
	raw, err := json.Marshal(ask{UserID: userID, Request: req})
	if err != nil {
		return nil, "", err
	}
	if err := c.store.PutRecord(ctx, recordAsk, id, raw, now.Add(c.askLifetime)); err != nil {
		return nil, "", fmt.Errorf("consent: keeping the question: %w", err)
	}
	return nil, PathConsent + "?id=" + url.QueryEscape(id), nil
}

// errNotYours: the answer is not there for this user (yet, or any more).
var errNotYours = errors.New("consent: not this user's answer")

// Result implements idp.ConsentGate: the answer is handed out once. The
// spending is written at once (not with the request's unit of work), so a
// second request for the same answer sees it spent.
func (c *Consent) Result(ctx context.Context, id, userID string) (*idp.ConsentResult, error) {
	if id == "" || len(id) > 64 || userID == "" {
		return nil, idp.ErrConsentNotFound
	}
	var out idp.ConsentResult
	err := c.store.UpdateRecord(store.SpendAtOnce(ctx), recordAsk, id, c.app.Now(), func(old []byte) ([]byte, error) {
		var a ask
		if err := json.Unmarshal(old, &a); err != nil {
			return nil, err
		}
		if !a.Answered || a.Taken || a.UserID != userID {
			return nil, errNotYours
		}
		a.Taken = true
		out = a.Result
		return json.Marshal(a)
	})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errNotYours):
		return nil, idp.ErrConsentNotFound
	case err != nil:
		return nil, fmt.Errorf("consent: taking the answer: %w", err)
	}
	return &out, nil
}

// Remembered implements idp.ConsentGate, newest first.
func (c *Consent) Remembered(ctx context.Context, userID string) ([]idp.RememberedConsent, error) {
	all, err := c.load(ctx, userID)
	if err != nil {
		return nil, err
	}
	now := c.app.Now()
	var out []idp.RememberedConsent
	for _, r := range all {
		if !now.Before(r.Expires) {
			continue
		}
		out = append(out, idp.RememberedConsent{Protocol: r.Protocol, Service: r.Service, Name: r.Name,
			Released: slices.Clone(r.Released), Given: r.Given})
	}
	slices.SortFunc(out, func(a, b idp.RememberedConsent) int { return b.Given.Compare(a.Given) })
	return out, nil
}

func (c *Consent) load(ctx context.Context, userID string) (userConsents, error) {
	raw, err := c.store.GetRecord(ctx, recordUser, userID, c.app.Now())
	if errors.Is(err, store.ErrNotFound) {
		return userConsents{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consent: loading remembered consents: %w", err)
	}
	all := userConsents{}
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("consent: decoding remembered consents: %w", err)
	}
	return all, nil
}

// save writes the user's consents; the record lives as long as the
// longest-lived of them.
func (c *Consent) save(ctx context.Context, userID string, all userConsents) error {
	now := c.app.Now()
	expires := now
	for k, r := range all {
		if !now.Before(r.Expires) {
			delete(all, k)
			continue
		}
		if r.Expires.After(expires) {
			expires = r.Expires
		}
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		// An expired record is as good as none.
		expires = now
	}
	if err := c.store.PutRecord(ctx, recordUser, userID, raw, expires); err != nil {
		return fmt.Errorf("consent: saving remembered consents: %w", err)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
