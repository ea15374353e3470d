package idp

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/campusidp/campusidp/mfa"
	"github.com/campusidp/campusidp/store"
)

// OTP failure budgets (issue #15 item 3). Wrong codes are counted per login
// or settings session under an account-wide ceiling (mfa.Codes); a browser
// that holds a cookie of the owner's is exempt from the ceiling and spends a
// budget of its own, so failures made elsewhere cannot lock the owner out.
//
// Which cookies count: a trusted-browser cookie (issued only after a second
// factor), or a device cookie that has completed a second factor for the
// account before. A bare device cookie proves only the password, which is
// exactly what the guesser this protects against has: they could mint one
// per login and so escape the ceiling.

// recordOTPDevice marks a device cookie (by keyed hash of ID and nonce) that
// passed a second factor for the account.
const recordOTPDevice = "otp_device"

type ownerCookiesKey struct{}

// ownerCookies is what a request needs to name the owner's browser; the
// result is cached per user for the request (it costs store reads).
type ownerCookies struct {
	req     *http.Request // headers only
	devices map[string]string
}

// withOwnerCookies keeps the request's cookies in the context, for code that
// builds OTP subjects from a context.
func withOwnerCookies(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, ownerCookiesKey{}, &ownerCookies{req: &http.Request{Header: r.Header}})
}

func (a *App) otpDeviceID(userID, nonce string) string {
	return a.keyedHash("otp-device", CanonicalID(userID)+"\x00"+nonce)
}

// ownerDevice names the owner's browser credential this request carries for
// userID ("" for none): its trusted-browser cookie, else its device cookie
// when that passed a second factor for the account before.
func (a *App) ownerDevice(ctx context.Context, userID string) string {
	oc, _ := ctx.Value(ownerCookiesKey{}).(*ownerCookies)
	if oc == nil || userID == "" {
		return ""
	}
	if d, ok := oc.devices[userID]; ok {
		return d
	}
	d := ""
	if a.browserTrusted(ctx, oc.req, userID) {
		c, _ := oc.req.Cookie(trustedCookie)
		d = "t:" + a.keyedHash("trusted", c.Value)
	} else if nonce := a.deviceNonce(oc.req, CanonicalID(userID)); nonce != "" {
		id := a.otpDeviceID(userID, nonce)
		_, err := a.store.GetRecord(ctx, recordOTPDevice, id, a.now())
		switch {
		case err == nil:
			d = "d:" + id
		case !errors.Is(err, store.ErrNotFound):
			// An outage: no exemption this time; not worth failing the request.
			a.log.WarnContext(ctx, "reading device record failed", "request_id", requestID(ctx), "error", err)
		}
	}
	if oc.devices == nil {
		oc.devices = map[string]string{}
	}
	oc.devices[userID] = d
	return d
}

// rememberOwnerDevice marks the request's device cookie for userID as having
// passed a second factor, so it is exempt from the account-wide OTP ceiling
// from now on (until the cookie's lifetime ends).
func (a *App) rememberOwnerDevice(ctx context.Context, userID string) {
	oc, _ := ctx.Value(ownerCookiesKey{}).(*ownerCookies)
	if oc == nil {
		return
	}
	nonce := a.deviceNonce(oc.req, CanonicalID(userID))
	if nonce == "" {
		return
	}
	id := a.otpDeviceID(userID, nonce)
	if d := oc.devices[userID]; d == "d:"+id {
		return // already known
	}
	exp := a.now().Add(a.cfg.Security.DeviceCookieLifetime)
	if err := a.store.PutRecord(ctx, recordOTPDevice, id, []byte("1"), exp); err != nil {
		a.log.WarnContext(ctx, "remembering device failed", "request_id", requestID(ctx), "error", err)
		return
	}
	delete(oc.devices, userID)
}

// factorSubject is the budget a second-factor check of userID spends in this
// request (TOTP, recovery codes, security keys).
func (a *App) factorSubject(ctx context.Context, userID string) mfa.Subject {
	return mfa.Subject{UserID: userID, Session: a.sessionBinding(ctx), Device: a.ownerDevice(ctx, userID)}
}

// otpCeilingReached runs once per window when wrong codes from sessions
// without an owner's cookie reach mfa.email.account_failure_limit: it is
// audited and the owner is told at the registered address, since someone
// who knows the password is probably guessing.
func (a *App) otpCeilingReached(ctx context.Context, userID string, until time.Time) {
	a.audit(ctx, "mfa_ceiling_reached", userID, map[string]string{"until": until.UTC().Format(time.RFC3339)})
	f, err := a.loadFactors(ctx, userID)
	if err != nil {
		a.log.ErrorContext(ctx, "loading factors failed", "request_id", requestID(ctx), "error", err)
		return
	}
	if f.Email == nil {
		return
	}
	a.notify(ctx, "otp_ceiling", userID, f.Email.Address, mailData{Until: formatWhen(until)})
}
