package idp

import (
	"bytes"
	"context"
	htmltemplate "html/template"
	"io/fs"
	// Plain-text mail bodies are not HTML: text/template keeps "&" and "<"
	// as typed. Every page and the HTML alternative use html/template.
	"text/template"
	"time"

	"github.com/campusidp/campusidp/config"
)

// Mail is one outgoing message.
type Mail struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Mailer delivers mail. Send must return an error wrapping the transport's
// outage error when the server cannot be reached, so the page can say so.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// mailNames lists every mail body; New fails if one is missing.
var mailNames = []string{"otp", "reset_code", "address_changed", "reset_done", "recovery_used", "key_added", "key_removed", "otp_ceiling"}

type mailer struct {
	texts   map[string]*template.Template
	html    *htmltemplate.Template
	catalog Catalog
	brand   config.Branding
}

func newMailer(fsys fs.FS, catalog Catalog, brand config.Branding) (*mailer, error) {
	m := &mailer{texts: map[string]*template.Template{}, catalog: catalog, brand: brand}
	for _, name := range mailNames {
		t, err := template.ParseFS(fsys, "mail/"+name+".txt")
		if err != nil {
			return nil, err
		}
		m.texts[name] = t
		if _, err := catalog.lookup(subjectKey(name)); err != nil {
			return nil, err
		}
	}
	html, err := htmltemplate.New("mail").Parse(`<!doctype html><html><body><pre style="font-family:sans-serif;white-space:pre-wrap">{{.}}</pre></body></html>`)
	if err != nil {
		return nil, err
	}
	m.html = html
	return m, nil
}

type mailData struct {
	Brand      config.Branding
	System     Message
	UserID     string
	Code       string
	Minutes    int
	NewAddress string
	When       string
	Remaining  int
	KeyName    string // a security key's name
	Until      string // when a lock ends
}

// compose renders a bilingual mail; subjects come from the catalog as
// "日本語 / English", as in the manual.
func (m *mailer) compose(name, to string, d mailData) (Mail, error) {
	d.Brand = m.brand
	d.System = m.catalog["site.system"]
	subj, err := m.catalog.lookup(subjectKey(name))
	if err != nil {
		return Mail{}, err
	}
	var text, html bytes.Buffer
	if err := m.texts[name].Execute(&text, d); err != nil {
		return Mail{}, err
	}
	if err := m.html.Execute(&html, text.String()); err != nil {
		return Mail{}, err
	}
	return Mail{To: to, Subject: subj.JA + " / " + subj.EN, Text: text.String(), HTML: html.String()}, nil
}

func subjectKey(mailName string) string { return "mail." + mailName + "_subject" }

func formatWhen(t time.Time) string { return t.Local().Format("2006-01-02 15:04 MST") }

// MailerFunc adapts a function to the Mailer interface.
type MailerFunc func(ctx context.Context, m Mail) error

// Send calls f.
func (f MailerFunc) Send(ctx context.Context, m Mail) error { return f(ctx, m) }
