package admin_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testldap"
)

var passwordBudgetRe = regexp.MustCompile(`(?s)Failed passwords.*?<dd>(\d+) / (\d+)`)

// failedPasswords reads the "Failed passwords" count of the lookup page.
func failedPasswords(t *testing.T, p page) int {
	t.Helper()
	m := passwordBudgetRe.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("no password budget on the lookup page (%d):\n%s", p.status, p.body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// A helpdesk worker on the phone read "Failed passwords 1/10" for a student
// whose only attempt had succeeded: the count must be failures only.
func TestLookupCountsOnlyFailedPasswords(t *testing.T) {
	e := newEnv(t)
	bob := testldap.Bob
	hb := e.browser()
	hb.openConsole(testldap.Helpdesk, "helpdesk1.home@example.net")

	if !signedIn(e.browser().login(bob.ID, bob.Password)) {
		t.Fatal("bob's login failed")
	}
	if n := failedPasswords(t, hb.get("/admin/user?id=bob")); n != 0 {
		t.Errorf("after one successful login the lookup shows %d failed passwords, want 0", n)
	}
	for i := 1; i <= 2; i++ {
		b := e.browser()
		b.submitLogin(b.openLogin(), bob.ID, "wrong")
		if n := failedPasswords(t, hb.get("/admin/user?id=bob")); n != i {
			t.Errorf("after %d wrong passwords the lookup shows %d", i, n)
		}
	}
	// A success forgives the failures before it.
	if !signedIn(e.browser().login(bob.ID, bob.Password)) {
		t.Fatal("bob's login failed")
	}
	if n := failedPasswords(t, hb.get("/admin/user?id=bob")); n != 0 {
		t.Errorf("after the failures and a success the lookup shows %d, want 0", n)
	}
}

// Helpdesk staff looking at an admin's account are offered no action: each
// would end in 403.
func TestHelpdeskSeesNoActionsOnAnAdmin(t *testing.T) {
	e := newEnv(t)
	hb := e.browser()
	hb.openConsole(testldap.Helpdesk, "helpdesk1.home@example.net")

	p := hb.get("/admin/user?id=" + testldap.Admin.ID)
	if p.status != http.StatusOK {
		t.Fatalf("lookup of an admin: %d", p.status)
	}
	if strings.Contains(p.body, "/admin/action?") {
		t.Errorf("the helpdesk is offered actions on an admin:\n%s", p.body)
	}
	if !strings.Contains(p.body, "higher staff role") || !strings.Contains(p.body, "上位のスタッフ権限") {
		t.Error("the page does not say why no action is offered")
	}
	// Every action it could have offered is indeed refused.
	for _, act := range []string{"reset-code", "unlock-password", "unlock-otp", "end-sessions", "clear-factors"} {
		if r := hb.get("/admin/action?action=" + act + "&id=" + testldap.Admin.ID); r.status != http.StatusForbidden {
			t.Errorf("%s on an admin: %d, want 403", act, r.status)
		}
	}
	// On a student's page the helpdesk's own actions are there.
	p = hb.get("/admin/user?id=alice")
	for _, act := range []string{"reset-code", "unlock-password", "unlock-otp", "end-sessions"} {
		if !strings.Contains(p.body, "action="+act+"&amp;id=alice") {
			t.Errorf("the helpdesk is not offered %s on a student's page", act)
		}
	}
	if strings.Contains(p.body, "action=clear-factors") {
		t.Error("the helpdesk is offered clear-factors")
	}
	// An admin looking at another admin keeps every action.
	ab := e.browser()
	ab.openConsole(testldap.Admin, "admin1.home@example.net")
	if p := ab.get("/admin/user?id=" + testldap.Admin.ID); !strings.Contains(p.body, "action=clear-factors") {
		t.Error("an admin is not offered clear-factors on an admin's page")
	}
}

// A refusal inside the console leads back to the user or the console, not
// to the login page the staff member is already past.
func TestConsoleRefusalsLeadBackIntoTheConsole(t *testing.T) {
	e := newEnv(t)
	hb := e.browser()
	hb.openConsole(testldap.Helpdesk, "helpdesk1.home@example.net")

	cases := []struct {
		path   string
		status int
		href   string
		label  string
	}{
		{"/admin/action?action=clear-factors&id=alice", http.StatusForbidden, `href="/admin/user?id=alice"`, "Back to the user"},
		{"/admin/action?action=reset-code&id=" + testldap.Admin.ID, http.StatusForbidden, `href="/admin/user?id=admin1"`, "Back to the user"},
		{"/admin/action?action=no-such-action&id=alice", http.StatusNotFound, `href="/admin/user?id=alice"`, "Back to the user"},
		{"/admin/no-such-page", http.StatusNotFound, `href="/admin/"`, "Back to the console"},
	}
	for _, c := range cases {
		p := hb.get(c.path)
		if p.status != c.status {
			t.Errorf("%s: %d, want %d", c.path, p.status, c.status)
		}
		if strings.Contains(p.body, "Back to the login page") || !strings.Contains(p.body, c.href) || !strings.Contains(p.body, c.label) {
			t.Errorf("%s: the page does not lead back with %s %q:\n%s", c.path, c.href, c.label, p.body)
		}
	}
	// A POST refused for the role leads back to the user too.
	token := hb.get("/admin/").hidden(t, "csrf_token")
	p := hb.post("/admin/action", map[string][]string{"csrf_token": {token}, "action": {"clear-factors"}, "id": {"alice"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, `href="/admin/user?id=alice"`) {
		t.Errorf("refused POST: %d\n%s", p.status, p.body)
	}
	// Someone who is not staff at all is not sent into the console.
	ub := e.browser()
	ub.login(testldap.Alice.ID, testldap.Alice.Password)
	if p := ub.get("/admin/"); p.status != http.StatusForbidden || strings.Contains(p.body, "Back to the console") {
		t.Errorf("non-staff refusal: %d\n%s", p.status, p.body)
	}
}
