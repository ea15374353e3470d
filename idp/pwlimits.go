package idp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// foldID does full Unicode case folding; a cases.Caser is not safe for
// concurrent use, so each call makes its own (they are cheap).
func foldID(s string) string { return cases.Fold().String(s) }

// CanonicalID is the one spelling of a typed login ID under which it is
// counted and looked up: NFKC, full case folding, NFKC again (the fold can
// undo normalisation). "ＵＳＥＲ0318", "uſer0318" and "user０３１８" all
// become "user0318", as the directory's own matching rules would fold them.
func CanonicalID(id string) string {
	return norm.NFKC.String(foldID(norm.NFKC.String(strings.TrimSpace(id))))
}

// validCanonicalID reports whether a canonical ID may be counted and sent
// to the directory (ldap.id_pattern).
func (a *App) validCanonicalID(id string) bool { return a.idPattern.MatchString(id) }

// Keys of the password budgets (see security.password_budget).
// The per-client keys of one ID share a prefix, so unlocking an account
// clears them all.
func passwordIDKey(canonical string) string        { return "pw:id:" + canonical }
func passwordIPKey(ip string) string               { return "pw:ip:" + ip }
func passwordClientPrefix(canonical string) string { return "pw:c:" + canonical + "|" }
func passwordClientKey(canonical, ip string) string {
	return passwordClientPrefix(canonical) + "ip:" + ip
}
func passwordDeviceKey(canonical, nonce string) string {
	return passwordClientPrefix(canonical) + "dev:" + nonce
}

// deviceCookiePrefix names device cookies; the rest of the name is a keyed
// hash of the ID, so one browser can hold cookies for several IDs (a shared
// family computer) without the names revealing them.
const deviceCookiePrefix = "idp_dev_"

func (a *App) deviceMAC(parts ...string) []byte {
	m := hmac.New(sha256.New, a.secretKey())
	m.Write([]byte("device-cookie\x00"))
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

func (a *App) deviceCookieName(canonical string) string {
	return deviceCookiePrefix + hex.EncodeToString(a.deviceMAC("name", canonical)[:10])
}

// deviceNonce returns the nonce of the request's valid device cookie for the
// canonical ID, or "" when the browser holds none.
func (a *App) deviceNonce(r *http.Request, canonical string) string {
	c, err := r.Cookie(a.deviceCookieName(canonical))
	if err != nil {
		return ""
	}
	nonce, rest, ok1 := strings.Cut(c.Value, ".")
	exp, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || nonce == "" {
		return ""
	}
	want := base64.RawURLEncoding.EncodeToString(a.deviceMAC("value", canonical, nonce, exp))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return ""
	}
	until, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !a.now().Before(time.Unix(until, 0)) {
		return ""
	}
	return nonce
}

// setDeviceCookie gives the browser a device cookie for the ID after a
// correct password, keeping the nonce it already had (and so its budget).
func (a *App) setDeviceCookie(w http.ResponseWriter, canonical, nonce string) {
	if nonce == "" {
		nonce = randomToken(16)
	}
	life := a.cfg.Security.DeviceCookieLifetime
	exp := strconv.FormatInt(a.now().Add(life).Unix(), 10)
	sig := base64.RawURLEncoding.EncodeToString(a.deviceMAC("value", canonical, nonce, exp))
	http.SetCookie(w, &http.Cookie{
		Name:     a.deviceCookieName(canonical),
		Value:    nonce + "." + exp + "." + sig,
		Path:     "/",
		MaxAge:   int(life.Seconds()),
		HttpOnly: true,
		Secure:   a.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// passwordAttempt is one password attempt's place in the budgets.
type passwordAttempt struct {
	canonical string
	device    string // nonce of the browser's device cookie for the ID, or ""
	keys      []string
	clientKey string
}

// spendPasswordAttempt spends one attempt from every password budget before
// the directory is asked, so parallel guesses can never overshoot a limit,
// and says which limit (a metrics.Key* name) refuses it, "" for none.
//
// The per-client budget always applies. The per-ID ceiling and the
// per-address throttle refuse only clients without the ID's device cookie:
// a browser that has signed in to the account before is never locked out
// by failures made elsewhere, which is what keeps these limits from being
// aimed at a user.
func (a *App) spendPasswordAttempt(ctx context.Context, at *passwordAttempt) (refusedBy string, resetAt time.Time, err error) {
	now := a.now()
	b := a.cfg.Security.PasswordBudget
	ip := clientIP(ctx)
	clientBudget, clientType := b.PerClient, metrics.KeyClient
	at.clientKey = passwordClientKey(at.canonical, ip)
	if at.device != "" {
		clientType = metrics.KeyDevice
		at.clientKey = passwordDeviceKey(at.canonical, at.device)
	}
	type spend struct {
		key   string
		limit config.Budget
		typ   string
		gated bool // refuses only clients without a device cookie
	}
	spends := []spend{
		{at.clientKey, clientBudget, clientType, false},
		{passwordIDKey(at.canonical), b.PerID, metrics.KeyID, true},
		{passwordIPKey(ip), b.PerIP, metrics.KeyIP, true},
	}
	// One statement spends all three (the store's HitCounters).
	hits := make([]store.CounterHit, len(spends))
	for i, s := range spends {
		hits[i] = store.CounterHit{Key: s.key, Window: s.limit.Window}
	}
	counts, err := store.HitAll(ctx, a.store, now, hits...)
	if err != nil {
		return "", time.Time{}, err
	}
	var refused map[string]string
	for i, s := range spends {
		c := counts[i]
		at.keys = append(at.keys, s.key)
		if c.Count <= s.limit.Limit || (s.gated && at.device != "") {
			continue
		}
		detail := map[string]string{"budget": s.typ, "reset_at": c.ResetAt.UTC().Format(time.RFC3339)}
		// Each trip is audited once, when its limit is first passed.
		if c.Count == s.limit.Limit+1 {
			a.audit(ctx, "login_locked", at.canonical, detail)
		}
		if refused == nil {
			refused, refusedBy, resetAt = detail, s.typ, c.ResetAt
		}
	}
	if refused != nil {
		a.audit(ctx, "login_refused_locked", at.canonical, refused)
		a.metrics.LimitTripped(metrics.LimitPassword, refusedBy)
	}
	return refusedBy, resetAt, nil
}
