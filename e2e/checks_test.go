package e2e

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/campusidp/campusidp/internal/testenv"
	"github.com/campusidp/campusidp/templates"
)

// The checks must be able to fail: each broken page below has to be caught,
// and the sound one must pass, under the IdP's own Content-Security-Policy.
func TestPageChecksCatchBrokenPages(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	e := testenv.New(t)
	resp, err := http.Get(e.URL("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("unexpected CSP %q", csp)
	}

	const sound = `<h1><span lang="ja">ログイン</span> / <span lang="en">Login</span></h1>
<p class="bi"><span lang="ja">入力してください。</span><br><span lang="en">Please enter it.</span></p>
<form><label for="id">ECS-ID/SPS-ID</label><input id="id" name="id">
<input name="q" aria-label="検索 / Search"><input type="hidden" name="csrf" value="x"><button type="submit">OK</button></form>`
	cases := []struct {
		name   string
		html   string // replaces the sound body; "" keeps it
		head   string
		lang   string // of <html>; "" means "ja"
		status int
		want   []string // each must be in some problem; none for the sound page
	}{
		{name: "sound page"},
		{name: "inline script", html: sound + `<script>document.title = "x";</script>`,
			want: []string{"an inline script", "Content Security Policy"}},
		{name: "script file", html: sound + `<script src="/case.js"></script>`,
			want: []string{"Content Security Policy"}},
		{name: "style element", head: `<style>h1 { color: red; }</style>`,
			want: []string{"a <style> element", "Content Security Policy"}},
		{name: "style attribute", html: sound + `<p lang="en" style="color: red">Hello there</p>`,
			want: []string{"an inline style attribute on p", "Content Security Policy"}},
		{name: "event handler", html: sound + `<button type="button" onclick="go()">OK</button>`,
			want: []string{"an event handler attribute onclick"}},
		{name: "javascript url", html: sound + `<a href="javascript:void(0)">OK</a>`,
			want: []string{"a javascript: URL"}},
		{name: "input without label", html: sound + `<input name="nolabel">`,
			want: []string{"an input without a label: input[name=nolabel]"}},
		{name: "label for another id", html: sound + `<label for="elsewhere">X</label><input id="here" name="here">`,
			want: []string{"an input without a label: input#here"}},
		{name: "empty label", html: sound + `<label for="blank"> </label><textarea id="blank" name="blank"></textarea>`,
			want: []string{"an input without a label: textarea#blank"}},
		{name: "no lang", lang: "none", want: []string{"<html lang>"}},
		{name: "japanese marked english", html: sound + `<p lang="en">日本語です</p>`,
			want: []string{`Japanese text in lang="en"`}},
		{name: "english unmarked", html: sound + `<p>Please sign in here</p>`,
			want: []string{`English text in lang="ja": Please sign in here`}},
		{name: "english first", html: sound + `<p><span lang="en">Logout</span> / <span lang="ja">ログアウト</span></p>`,
			want: []string{"English before Japanese in p"}},
		{name: "english shown first", html: sound + `<p class="reversed"><span lang="ja">ログアウト</span><span lang="en">Logout</span></p>`,
			want: []string{"English shown before Japanese in p"}},
		{name: "too wide for a phone", html: sound + `<div class="wide">x</div>`,
			want: []string{"px wide on a 375 px phone screen"}},
		{name: "missing image", html: sound + `<img src="/missing.png" alt="x">`,
			want: []string{"status of 404"}},
		{name: "wrong status", status: http.StatusInternalServerError,
			want: []string{"HTTP status 500, want 200"}},
	}
	byPath := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /case.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, ".reversed { display: flex; flex-direction: row-reverse; } .wide { width: 600px; }")
	})
	mux.HandleFunc("GET /case.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, "document.title = 'x';")
	})
	mux.HandleFunc("GET /case/{i}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		tc := cases[i]
		body, lang, status := tc.html, tc.lang, tc.status
		if body == "" {
			body = sound
		}
		langAttr := ` lang="ja"`
		if lang == "none" {
			langAttr = ""
		}
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<!doctype html><html%s><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>case</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/case.css">%s</head><body>%s</body></html>`, langAttr, tc.head, body)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for i := range cases {
		byPath[fmt.Sprintf("/case/%d", i)] = i
	}
	// One tab for all cases: each check sees only the messages since the
	// previous one. No screenshots of these made-up pages.
	tb := newTab(t, e)
	tb.noShots = true
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := tb.t
			tb.t = t // helpers fail the subtest, from its own goroutine
			defer func() { tb.t = parent }()
			tb.navigate(chromedp.Navigate(fmt.Sprintf("%s/case/%d", srv.URL, i)))
			problems := tb.pageProblems(tc.name, http.StatusOK)
			if len(tc.want) == 0 && len(problems) > 0 {
				t.Fatalf("the sound page has problems:\n%s", strings.Join(problems, "\n"))
			}
			for _, w := range tc.want {
				if !containsSome(problems, w) {
					t.Errorf("no problem mentions %q; found:\n%s", w, strings.Join(problems, "\n"))
				}
			}
		})
	}
}

func containsSome(list []string, s string) bool {
	for _, l := range list {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

var (
	scriptRe  = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	styleRe   = regexp.MustCompile(`(?i)<style\b`)
	styleAtRe = regexp.MustCompile(`(?i)<[a-z][^>]*\sstyle\s*=`)
	handlerRe = regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`)
	jsURLRe   = regexp.MustCompile(`(?i)(href|src|action|formaction)\s*=\s*["']?\s*javascript:`)
	fieldRe   = regexp.MustCompile(`(?is)<(input|select|textarea)\b([^>]*)>`)
	typeRe    = regexp.MustCompile(`(?i)\stype="([^"]*)"`)
	idRe      = regexp.MustCompile(`(?i)\sid="([^"]*)"`)
	nameRe    = regexp.MustCompile(`(?i)\sname="([^"]*)"`)
	ariaRe    = regexp.MustCompile(`(?i)\saria-label(ledby)?="[^"]+"`)
)

// templateProblems reads a page template as text: no inline script or
// style of any kind, and every field has an id that a <label for> names (or
// an aria-label). It sees pages the browser tests may not reach.
func templateProblems(src string) []string {
	var problems []string
	for _, m := range scriptRe.FindAllStringSubmatch(src, -1) {
		if !strings.Contains(strings.ToLower(m[1]), "src=") || strings.TrimSpace(m[2]) != "" {
			problems = append(problems, "an inline script: "+firstLine(m[0]))
		}
	}
	if styleRe.MatchString(src) {
		problems = append(problems, "a <style> element")
	}
	for _, m := range styleAtRe.FindAllString(src, -1) {
		problems = append(problems, "an inline style attribute: "+firstLine(m))
	}
	for _, m := range handlerRe.FindAllString(src, -1) {
		problems = append(problems, "an event handler attribute: "+firstLine(m))
	}
	if jsURLRe.MatchString(src) {
		problems = append(problems, "a javascript: URL")
	}
	for _, m := range fieldRe.FindAllStringSubmatch(src, -1) {
		attrs := m[2]
		if t := typeRe.FindStringSubmatch(attrs); t != nil {
			switch strings.ToLower(t[1]) {
			case "hidden", "submit", "button", "reset", "image":
				continue
			}
		}
		if ariaRe.MatchString(attrs) {
			continue
		}
		id := idRe.FindStringSubmatch(attrs)
		if id == nil || !strings.Contains(src, `for="`+id[1]+`"`) {
			name := ""
			if n := nameRe.FindStringSubmatch(attrs); n != nil {
				name = n[1]
			}
			problems = append(problems, fmt.Sprintf("a <%s name=%q> without a label", m[1], name))
		}
	}
	return problems
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// Every page template, including those no browser test reaches.
func TestTemplatesHaveNoInlineCodeAndLabelEveryField(t *testing.T) {
	pages, err := fs.Glob(templates.FS, "pages/*.html")
	if err != nil || len(pages) < 10 {
		t.Fatalf("page templates: %v (%d found)", err, len(pages))
	}
	for _, p := range pages {
		src, err := fs.ReadFile(templates.FS, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, problem := range templateProblems(string(src)) {
			t.Errorf("%s: %s", p, problem)
		}
	}
}

func TestTemplateCheckCatchesBrokenTemplates(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"sound", `<label for="a">A</label><input id="a" name="a"><input type="hidden" name="h">` +
			`<input name="s" aria-label="検索"><script src="/static/x.js" defer></script>` +
			`<input id="{{.}}" type="checkbox"><label for="{{.}}">T</label>`, ""},
		{"inline script", `<script>alert(1)</script>`, "an inline script"},
		{"script file with a body", `<script src="/x.js">alert(1)</script>`, "an inline script"},
		{"style element", `<STYLE>p{}</STYLE>`, "a <style> element"},
		{"style attribute", `<p class="x" style="color:red">`, "an inline style attribute"},
		{"event handler", `<body onload="go()">`, "an event handler attribute"},
		{"javascript url", `<a href="javascript:go()">`, "a javascript: URL"},
		{"unlabelled input", `<input name="q" type="text">`, `<input name="q"> without a label`},
		{"label for another id", `<label for="b">B</label><select id="a" name="a"></select>`, `<select name="a"> without a label`},
		{"unlabelled textarea", "<textarea\n name=\"t\"></textarea>", `<textarea name="t"> without a label`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := templateProblems(tc.src)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("sound template flagged: %v", got)
				}
				return
			}
			if !containsSome(got, tc.want) {
				t.Fatalf("problems %v, want one with %q", got, tc.want)
			}
		})
	}
}

// Without the browser the suite fails with the way to get it.
func TestMissingBrowserFailsWithTheHint(t *testing.T) {
	saved := chromiumPath
	chromiumPath = "/nonexistent/chromium"
	defer func() { chromiumPath = saved }()
	_, _, err := startBrowser()
	if err == nil || !strings.Contains(err.Error(), "scripts/test.sh") || !strings.Contains(err.Error(), "apt") {
		t.Fatalf("startBrowser without chromium: %v", err)
	}
}
