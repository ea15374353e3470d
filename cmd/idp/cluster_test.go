package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testpg"
	"github.com/campusidp/campusidp/internal/testredis"
	"github.com/campusidp/campusidp/internal/testsmtp"
	"github.com/campusidp/campusidp/store"
)

// cluster is two idp instances on one PostgreSQL database behind a
// round-robin balancer, as a campus would run them.
type cluster struct {
	lb    *balancer
	nodes []*node
	ldap  *testldap.Server
	smtp  *testsmtp.Server
	dsn   string
}

func newCluster(t *testing.T, mutate func(*config.Config)) *cluster {
	t.Helper()
	c := &cluster{ldap: testldap.Start(t), smtp: testsmtp.Start(t), dsn: testpg.DSN(t)}
	lb, ln := newBalancer(t)
	c.lb = lb
	for _, name := range []string{"A", "B"} {
		cfg := baseConfig(t, c.ldap, c.smtp)
		cfg.Server.PublicURL = lb.url
		cfg.Store.Driver = config.StorePostgres
		cfg.Store.DSN = config.SecretValue(c.dsn)
		// Generous budgets: the tests count spending, not the lock. The
		// per-session budget may not exceed the account-wide ceiling (<= 100).
		cfg.MFA.Email.FailureBudget = config.Budget{Limit: 100, Window: time.Hour}
		cfg.MFA.Email.MaxTriesPerCode = 10
		if mutate != nil {
			mutate(&cfg)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(config.Describe(err))
		}
		c.nodes = append(c.nodes, startNode(t, name, cfg))
	}
	lb.serveNodes(t, ln, c.nodes...)
	return c
}

// store opens the cluster's database the way a third instance would.
func (c *cluster) store(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), c.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// servedBy returns the nodes that served requests matching method and path
// prefix in trace.
func servedBy(trace []string, method, pathPrefix string) map[string]int {
	by := map[string]int{}
	for _, line := range trace {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == method && strings.HasPrefix(f[2], pathPrefix) {
			by[f[0]]++
		}
	}
	return by
}

// TestClusterLoginAlternatesBetweenInstances: every request of enrollment
// and of a login with a mailed code goes to the other instance than the one
// before, with sessions in PostgreSQL or in Redis; the login completes.
func TestClusterLoginAlternatesBetweenInstances(t *testing.T) {
	for _, inRedis := range []bool{false, true} {
		t.Run(map[bool]string{false: "sessions in the store", true: "sessions in redis"}[inRedis], func(t *testing.T) {
			var mutate func(*config.Config)
			var prefix string
			if inRedis {
				prefix = testredis.Prefix(t)
				mutate = func(c *config.Config) {
					c.Session.Store = config.SessionStoreRedis
					c.Session.Redis.Address = testredis.Addr()
					c.Session.Redis.KeyPrefix = prefix
				}
			}
			c := newCluster(t, mutate)
			const addr = "alice.private@example.net"
			b := newBrowser(t, c.lb.url)
			b.enroll(testldap.Alice, c.smtp, addr)
			b.logout()

			// Twice, the second time with one more request between the
			// mailing of the code and its check, so that the code is checked
			// once on the instance that mailed it and once on the other.
			for shift := range 2 {
				c.lb.served()
				seen := mailsTo(c.smtp, addr)
				p := b.login(testldap.Alice)
				if !strings.Contains(p.Body, "Multi-Factor Authentication") {
					t.Fatalf("shift %d: expected the MFA page, got %d:\n%s", shift, p.Status, p.Body)
				}
				code := codeFor(t, c.smtp, addr, seen)
				if shift == 1 {
					b.Get("/healthz")
				}
				p = b.Follow(b.Post("/mfa/verify", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")},
					"tx": {p.Hidden(b.t, "tx")}, "code": {code}}))
				if !signedIn(p) {
					t.Fatalf("shift %d: login across instances did not complete: %d\n%s", shift, p.Status, p.Body)
				}
				trace := c.lb.served()
				var prev string
				for _, line := range trace {
					node := strings.Fields(line)[0]
					if node == prev {
						t.Fatalf("two requests in a row on node %s; trace:\n%s", node, strings.Join(trace, "\n"))
					}
					prev = node
				}
				if len(trace) < 5 {
					t.Fatalf("login took %d requests, want the whole flow through the balancer:\n%s", len(trace), strings.Join(trace, "\n"))
				}
				// The sessions are where the config says.
				all, err := c.store(t).SessionStore().AllCtx(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				rows := len(all)
				keys := 0
				if inRedis {
					keys = len(testredis.Keys(t, prefix+"session:"))
				}
				if inRedis && (keys == 0 || rows != 0) || !inRedis && rows == 0 {
					t.Fatalf("sessions in redis = %v: %d redis keys, %d session rows", inRedis, keys, rows)
				}
				b.logout()
			}
		})
	}
}

// TestClusterParallelWrongCodesSpendExactBudget: 50 wrong codes typed at
// once in one session, spread over both instances, spend exactly 50 of the
// session's failure budget; with a budget of 20, exactly 20 are judged and
// the rest refused as locked. Only judged guesses reach the account-wide
// ceiling.
func TestClusterParallelWrongCodesSpendExactBudget(t *testing.T) {
	tests := []struct {
		name       string
		limit      int
		wantJudged int
	}{
		{"budget left", 100, 50},
		{"budget runs out", 20, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, func(cfg *config.Config) {
				cfg.MFA.Email.FailureBudget = config.Budget{Limit: tc.limit, Window: time.Hour}
			})
			const addr = "alice.budget@example.net"
			enroller := newBrowser(t, c.lb.url)
			enroller.enroll(testldap.Alice, c.smtp, addr)
			b := newBrowser(t, c.lb.url)
			seen := mailsTo(c.smtp, addr)
			p := b.login(testldap.Alice)
			code := codeFor(t, c.smtp, addr, seen)
			wrong := wrongCode(code)
			c.lb.served()

			const guesses = 50
			form := url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {p.Hidden(b.t, "tx")}, "code": {wrong}}
			statuses := make([]int, guesses)
			bodies := make([]string, guesses)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range guesses {
				wg.Go(func() {
					<-start
					req, _ := http.NewRequest(http.MethodPost, c.lb.url+"/mfa/verify", strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := b.Client.Do(req)
					if err != nil {
						t.Errorf("guess %d: %v", i, err)
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					statuses[i], bodies[i] = resp.StatusCode, string(body)
				})
			}
			close(start)
			wg.Wait()

			by := servedBy(c.lb.served(), http.MethodPost, "/mfa/verify")
			if by["A"] == 0 || by["B"] == 0 || by["A"]+by["B"] != guesses {
				t.Fatalf("guesses per node = %v, want all %d spread over A and B", by, guesses)
			}
			counter, err := c.store(t).GetCounter(context.Background(), "mfa:fail:"+testldap.Alice.ID, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if counter.Count != tc.wantJudged {
				t.Fatalf("account-wide ceiling spent = %d, want exactly %d", counter.Count, tc.wantJudged)
			}
			judged, locked := 0, 0
			for i, st := range statuses {
				switch {
				case st == http.StatusTooManyRequests || strings.Contains(bodies[i], "locked"):
					locked++
				case st >= 400 && st < 500:
					judged++
				default:
					t.Errorf("guess %d: status %d", i, st)
				}
			}
			if judged != tc.wantJudged || locked != guesses-tc.wantJudged {
				t.Fatalf("judged %d, locked %d; want %d and %d", judged, locked, tc.wantJudged, guesses-tc.wantJudged)
			}
		})
	}
}

// TestClusterLoginSurvivesInstanceCrash: an instance dies between the
// password and the code; the balancer sends the rest of the login to the
// other instance, which finishes it.
func TestClusterLoginSurvivesInstanceCrash(t *testing.T) {
	c := newCluster(t, nil)
	const addr = "alice.crash@example.net"
	newBrowser(t, c.lb.url).enroll(testldap.Alice, c.smtp, addr)
	c.lb.served()

	b := newBrowser(t, c.lb.url)
	seen := mailsTo(c.smtp, addr)
	p := b.login(testldap.Alice)
	if !strings.Contains(p.Body, "Multi-Factor Authentication") {
		t.Fatalf("expected the MFA page, got %d:\n%s", p.Status, p.Body)
	}
	code := codeFor(t, c.smtp, addr, seen)
	// Kill the instance that checked the password and mailed the code.
	by := servedBy(c.lb.served(), http.MethodPost, "/login")
	if by["A"]+by["B"] != 1 {
		t.Fatalf("password posted %v times, want once", by)
	}
	victim := c.nodes[0]
	if by["B"] == 1 {
		victim = c.nodes[1]
	}
	victim.kill(t)

	p = b.Follow(b.Post("/mfa/verify", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")},
		"tx": {p.Hidden(b.t, "tx")}, "code": {code}}))
	if !signedIn(p) {
		t.Fatalf("login did not finish on the surviving instance: %d\n%s", p.Status, p.Body)
	}
	for _, line := range c.lb.served() {
		if strings.HasPrefix(line, victim.name+" ") {
			t.Fatalf("the dead instance %s served %q", victim.name, line)
		}
	}
}

func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

var secretRe = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)

func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClusterTOTPCodeWorksOnce: the same authenticator-app code typed in
// two browsers at once, one request on each instance, signs in exactly one
// of them; the other is refused as a replay. The last used time step is
// shared, and updated atomically.
func TestClusterTOTPCodeWorksOnce(t *testing.T) {
	c := newCluster(t, nil)
	b := newBrowser(t, c.lb.url)
	p := b.login(testldap.Alice)
	tx := fieldOrEmpty(p, "tx")
	p = b.Get("/user/otp?tab=app&tx=" + url.QueryEscape(tx))
	m := secretRe.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("App tab shows no secret:\n%s", p.Body)
	}
	secret := m[1]
	// Register with the previous time step's code (within the allowed
	// skew), so the current step is still unused for the logins below.
	p = b.Post("/user/otp/app/confirm", url.Values{"csrf_token": {p.Hidden(b.t, "csrf_token")}, "tx": {tx},
		"code": {totpAt(t, secret, time.Now().Add(-30*time.Second))}})
	if !strings.Contains(p.Body, "settings are complete") {
		t.Fatalf("app setup did not complete: %d\n%s", p.Status, p.Body)
	}

	var pages [2]page
	var browsers [2]*browser
	for i := range browsers {
		browsers[i] = newBrowser(t, c.lb.url)
		pages[i] = browsers[i].login(testldap.Alice)
		if !strings.Contains(pages[i].Body, "Multi-Factor Authentication : App") {
			t.Fatalf("expected the App MFA page, got %d:\n%s", pages[i].Status, pages[i].Body)
		}
	}
	code := totpAt(t, secret, time.Now())
	c.lb.served()
	var results [2]page
	var wg sync.WaitGroup
	for i, br := range browsers {
		form := url.Values{"csrf_token": {pages[i].Hidden(br.t, "csrf_token")}, "tx": {pages[i].Hidden(br.t, "tx")},
			"method": {"totp"}, "code": {code}}
		wg.Go(func() { results[i] = br.Post("/mfa/verify", form) })
	}
	wg.Wait()
	if by := servedBy(c.lb.served(), http.MethodPost, "/mfa/verify"); by["A"] != 1 || by["B"] != 1 {
		t.Fatalf("code checks per node = %v, want one on each", by)
	}
	passed := 0
	for i, r := range results {
		switch {
		case r.Status == http.StatusSeeOther && signedIn(browsers[i].Follow(r)):
			passed++
		case r.Status >= 400 && r.Status < 500:
		default:
			t.Errorf("browser %d: status %d\n%s", i, r.Status, r.Body)
		}
	}
	if passed != 1 {
		t.Fatalf("%d of 2 browsers signed in with one code, want exactly 1", passed)
	}
}
