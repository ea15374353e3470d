package consent

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/store"
)

type httpHandler func(http.ResponseWriter, *http.Request)

func (h httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h(w, r) }

// maxFormBytes bounds the consent and revoke forms.
const maxFormBytes = 16 << 10

// page is the consent page's data.
type page struct {
	ID       string
	Name     config.Localized
	Service  string
	Logo     string
	Terms    config.Localized
	Required []item
	Optional []item
	// Remember offers "remember for this service" (mode once).
	Remember bool
}

type item struct {
	Key    string
	Label  *idp.Message // nil: the key is shown as is
	Values []string
}

// DeclinedPage is the data of the page a front-end shows when the user
// declined: it tells the service with a button (a form carrying the SAML
// response) or a link (the OIDC error redirect).
type DeclinedPage struct {
	Service string
	// Action and Fields: a form posted to the service.
	Action string
	Fields []Field
	// Link: the service's address with the refusal.
	Link string
}

// Field is one hidden form field.
type Field struct{ Name, Value string }

// ServiceName is how pages name a service: both languages when given.
func ServiceName(n config.Localized, fallback string) string {
	switch {
	case n.JA != "" && n.EN != "" && n.JA != n.EN:
		return n.JA + " / " + n.EN
	case n.JA != "" || n.EN != "":
		return n.JA + n.EN
	}
	return fallback
}

// loadAsk returns the question for the signed-in user, or nil after
// answering with an error page.
func (c *Consent) loadAsk(w http.ResponseWriter, r *http.Request, id string) (*ask, *idp.SessionUser) {
	ctx := r.Context()
	u := c.app.CurrentUser(ctx)
	if id == "" || len(id) > 64 || u == nil {
		c.app.RenderError(w, r, http.StatusBadRequest, "error.title", "consent.expired")
		return nil, nil
	}
	raw, err := c.store.GetRecord(ctx, recordAsk, id, c.app.Now())
	if errors.Is(err, store.ErrNotFound) {
		c.app.RenderError(w, r, http.StatusBadRequest, "error.title", "consent.expired")
		return nil, nil
	}
	if err != nil {
		c.app.ServerError(w, r, err)
		return nil, nil
	}
	var a ask
	if err := json.Unmarshal(raw, &a); err != nil {
		c.app.ServerError(w, r, err)
		return nil, nil
	}
	if a.UserID != u.ID || a.Answered {
		c.app.RenderError(w, r, http.StatusBadRequest, "error.title", "consent.expired")
		return nil, nil
	}
	return &a, u
}

func (c *Consent) handlePage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	a, _ := c.loadAsk(w, r, id)
	if a == nil {
		return
	}
	req := a.Request
	p := page{ID: id, Name: req.Name, Service: req.Service, Terms: req.Terms,
		Remember: req.Mode == config.ConsentOnce}
	if p.Terms == (config.Localized{}) {
		p.Terms = c.cfg.TermsOfUse
	}
	if origin, ok := logoOrigin(req.Logo); ok {
		p.Logo = req.Logo
		idp.AllowImagesFrom(w, origin)
	}
	for _, it := range req.Items {
		v := item{Key: it.Key, Values: it.Values}
		if m, ok := c.app.Message("consent.attr." + it.Key); ok {
			v.Label = &m
		}
		if it.Required {
			p.Required = append(p.Required, v)
		} else {
			p.Optional = append(p.Optional, v)
		}
	}
	c.app.RenderPage(w, r, http.StatusOK, "consent", p)
}

// logoOrigin accepts only https:// logos (config and metadata are checked
// too); the page's policy then allows images from that origin.
func logoOrigin(raw string) (string, bool) {
	if raw == "" || strings.ContainsAny(raw, " \"';,") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return "", false
	}
	return "https://" + u.Host, true
}

func (c *Consent) handleAnswer(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.app.RenderError(w, r, http.StatusBadRequest, "error.title", "error.bad_request")
		return
	}
	id := r.PostForm.Get("id")
	a, u := c.loadAsk(w, r, id)
	if a == nil {
		return
	}
	req := a.Request
	detail := map[string]string{"service": req.Service, "protocol": req.Protocol}
	switch r.PostForm.Get("decision") {
	case "accept":
		ticked := r.PostForm["optional"]
		var released []string
		for _, it := range req.Items {
			if it.Required || slices.Contains(ticked, it.Key) {
				released = append(released, it.Key)
			}
		}
		remember := req.Mode == config.ConsentOnce && r.PostForm.Get("remember") == "1"
		detail["released"] = strings.Join(released, " ")
		detail["remember"] = boolString(remember)
		// The release must not happen unrecorded.
		if err := c.app.AuditSecurity(ctx, "consent_given", u.ID, detail); err != nil {
			c.app.ServerError(w, r, err)
			return
		}
		if remember {
			all, err := c.load(ctx, u.ID)
			if err != nil {
				c.app.ServerError(w, r, err)
				return
			}
			now := c.app.Now()
			all[serviceKey(req.Protocol, req.Service)] = remembered{Protocol: req.Protocol, Service: req.Service,
				Name: req.Name, RequestDigest: requestDigest(req), ValuesDigest: valuesDigest(req, released),
				Released: released, Given: now, Expires: now.Add(c.cfg.RememberFor)}
			if err := c.save(ctx, u.ID, all); err != nil {
				c.app.ServerError(w, r, err)
				return
			}
		}
		a.Result = idp.ConsentResult{Released: released}
	case "decline":
		if err := c.app.AuditSecurity(ctx, "consent_declined", u.ID, detail); err != nil {
			c.app.ServerError(w, r, err)
			return
		}
		a.Result = idp.ConsentResult{Declined: true}
	default:
		c.app.RenderError(w, r, http.StatusBadRequest, "error.title", "error.bad_request")
		return
	}
	a.Answered = true
	raw, err := json.Marshal(a)
	if err == nil {
		err = c.store.PutRecord(ctx, recordAsk, id, raw, c.app.Now().Add(c.askLifetime))
	}
	if err != nil {
		c.app.ServerError(w, r, err)
		return
	}
	sep := "?"
	if strings.Contains(req.ReturnTo, "?") {
		sep = "&"
	}
	http.Redirect(w, r, req.ReturnTo+sep+"consent="+url.QueryEscape(id), http.StatusSeeOther)
}

// handleRevoke forgets one remembered consent: the next login to the
// service asks again.
func (c *Consent) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := c.app.CurrentUser(ctx)
	if u == nil {
		http.Redirect(w, r, "/user/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.app.RenderError(w, r, http.StatusBadRequest, "error.title", "error.bad_request")
		return
	}
	key := serviceKey(r.PostForm.Get("protocol"), r.PostForm.Get("service"))
	all, err := c.load(ctx, u.ID)
	if err != nil {
		c.app.ServerError(w, r, err)
		return
	}
	rec, ok := all[key]
	if ok {
		if err := c.app.AuditSecurity(ctx, "consent_revoked", u.ID,
			map[string]string{"service": rec.Service, "protocol": rec.Protocol}); err != nil {
			c.app.ServerError(w, r, err)
			return
		}
		delete(all, key)
		if err := c.save(ctx, u.ID, all); err != nil {
			c.app.ServerError(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/user/", http.StatusSeeOther)
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
