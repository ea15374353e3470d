package config

import (
	"net/url"
	"strings"
	"time"
)

// Logout is single logout: how the IdP tells the services that got a login
// from a browser session that the session ended.
type Logout struct {
	// MaxServices bounds the services remembered per browser session; past
	// it the oldest is forgotten (and not told at logout). A limit, so one
	// session cannot grow its row or a logout's fan-out without end.
	MaxServices int `yaml:"max_services"`
	// FrontChannelWait is how long the logout page waits for the SAML SPs'
	// answers (and the OIDC front-channel frames) before it shows the
	// results; a service that has not answered is listed as such.
	FrontChannelWait time.Duration `yaml:"front_channel_wait"`
	// Backchannel is OpenID Connect Back-Channel Logout delivery.
	Backchannel BackchannelLogout `yaml:"backchannel"`
}

// BackchannelLogout bounds the delivery of logout tokens. The first
// attempt is made while the user's logout page waits (at most Timeout);
// the retries run in the background, in the process that made the first
// attempt: they do not survive a restart.
type BackchannelLogout struct {
	// Timeout bounds each POST to a client's backchannel_logout_uri.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts is the number of POSTs per client and logout, first included.
	Attempts int `yaml:"attempts"`
	// Backoff is the wait before the first retry; it doubles each time.
	Backoff time.Duration `yaml:"backoff"`
}

func defaultLogout() Logout {
	return Logout{
		MaxServices:      50,
		FrontChannelWait: 10 * time.Second,
		Backchannel: BackchannelLogout{
			Timeout:  2 * time.Second,
			Attempts: 4,
			Backoff:  2 * time.Second,
		},
	}
}

func (l Logout) validate(v *validator, p string) {
	v.intRange(p+".max_services", l.MaxServices, 1, 500)
	v.duration(p+".front_channel_wait", l.FrontChannelWait, time.Minute)
	v.duration(p+".backchannel.timeout", l.Backchannel.Timeout, 30*time.Second)
	v.intRange(p+".backchannel.attempts", l.Backchannel.Attempts, 1, 10)
	v.duration(p+".backchannel.backoff", l.Backchannel.Backoff, 5*time.Minute)
}

// logoutURI checks a client's backchannel_logout_uri or
// frontchannel_logout_uri (Back-Channel Logout 1.0 section 2.2,
// Front-Channel Logout 1.0 section 2): an absolute http(s) URI without a
// fragment, https unless on the loopback interface.
func logoutURI(v *validator, path, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		v.add(path, "must be an absolute URI (got %q)", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		v.add(path, "must not contain a fragment (got %q)", raw)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		v.add(path, "must use https (http only on the loopback interface) (got %q)", raw)
	}
}
