package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/campusidp/campusidp/config"
)

// ErrConsentNotFound: no answer for that consent ID from this user (unknown,
// expired, already used, or not answered yet).
var ErrConsentNotFound = errors.New("idp: consent answer not found")

// ConsentItem is one attribute (SAML) or scope (OIDC) a service would
// receive, with the user's values as the page shows them.
type ConsentItem struct {
	// Key names it in the front-end's terms: a saml.attributes name or an
	// OIDC scope.
	Key string
	// Values are shown to the user ("claim: value" lines for a scope).
	Values []string
	// Required items go with every release; the user can only decline
	// the whole login. Optional ones are released only when ticked.
	Required bool
}

// ConsentRequest is what a front-end asks the consent step about, after the
// factor step and before its assertion or code.
type ConsentRequest struct {
	// Protocol is "saml" or "oidc"; Service the entity ID or client ID.
	Protocol string
	Service  string
	// Name is the service's display name in both languages (either may be
	// empty); Logo an https:// image URL or "".
	Name config.Localized
	Logo string
	// Terms is the terms-of-use text, when configured.
	Terms config.Localized
	// Mode is config.ConsentNone, ConsentOnce or ConsentAlways.
	Mode string
	// Ask shows the page even when a remembered consent matches (OIDC
	// prompt=consent); it does not turn mode none into asking.
	Ask   bool
	Items []ConsentItem
	// ReturnTo is the front-end's local path the browser comes back to
	// after the consent page; the gate appends consent=<id>.
	ReturnTo string
}

// ConsentResult is the user's answer (or the remembered one).
type ConsentResult struct {
	Declined bool
	// Released are the keys of the items that may go to the service: the
	// required ones and the ticked optional ones.
	Released []string
}

// Releases reports whether the item with key may go to the service.
func (r *ConsentResult) Releases(key string) bool {
	for _, k := range r.Released {
		if k == key {
			return true
		}
	}
	return false
}

// RememberedConsent is a consent the user let the IdP remember.
type RememberedConsent struct {
	Protocol string
	Service  string
	Name     config.Localized
	Released []string
	Given    time.Time
}

// ConsentGate is the consent step (package idp/consent). Front-ends ask it
// before they release attributes; without one plugged in, nothing is asked.
type ConsentGate interface {
	// Decide answers at once when no page is needed (mode none, or a
	// remembered consent for the same request and values). Otherwise it
	// keeps the request and returns the consent page's local URL.
	Decide(ctx context.Context, userID string, req ConsentRequest) (*ConsentResult, string, error)
	// Result returns the answer given on the consent page for id, once,
	// and only to the user who gave it. ErrConsentNotFound otherwise.
	Result(ctx context.Context, id, userID string) (*ConsentResult, error)
	// Remembered lists the user's remembered consents for /user/.
	Remembered(ctx context.Context, userID string) ([]RememberedConsent, error)
}

// SetConsent plugs in the consent step (idp/consent.Mount does).
func (a *App) SetConsent(g ConsentGate) { a.consent = g }

// Consent returns the consent step, or nil when none is plugged in.
func (a *App) Consent() ConsentGate { return a.consent }

// AllowImagesFrom lets this response's page show images from one more
// origin (a service's logo on the consent page); the rest of the strict
// policy stays.
func AllowImagesFrom(w http.ResponseWriter, origin string) {
	// A repeated directive would be ignored: the browser keeps the first.
	w.Header().Set("Content-Security-Policy", strings.Replace(contentSecurityPolicy,
		"img-src 'self' data:", "img-src 'self' data: "+origin, 1))
}
