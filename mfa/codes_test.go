package mfa_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campusidp/campusidp/mfa"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var testConfig = mfa.CodeConfig{
	Digits: 6, Lifetime: 10 * time.Minute, ResetLifetime: 30 * time.Minute, MaxTries: 5,
	FailureLimit: 10, FailureWindow: time.Hour, ResendCooldown: time.Minute, SendsPerHour: 5,
	MaxOutstanding: 3, AccountFailureLimit: 30,
}

func newCodes(t *testing.T, cfg mfa.CodeConfig) (*mfa.Codes, *memStore, *testClock) {
	t.Helper()
	st := newMemStore()
	clk := &testClock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	c, err := mfa.NewCodes(cfg, []byte(strings.Repeat("x", 32)), st, st, mfa.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return c, st, clk
}

var alice = mfa.Subject{UserID: "alice", Purpose: mfa.PurposeLogin, Binding: "tx-1", Session: "s-1"}

func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func TestCodeIssueAndVerify(t *testing.T) {
	c, _, _ := newCodes(t, testConfig)
	code, err := c.Issue(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		t.Fatalf("code %q is not 6 digits", code)
	}
	if err := c.Verify(context.Background(), alice, code); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := c.Verify(context.Background(), alice, code); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("second use: %v, want ErrCodeInvalid", err)
	}
}

func TestCodeDigitsConfigurable(t *testing.T) {
	cfg := testConfig
	cfg.Digits = 8
	c, _, _ := newCodes(t, cfg)
	code, err := c.Issue(context.Background(), alice)
	if err != nil || len(code) != 8 {
		t.Fatalf("code %q err %v, want 8 digits", code, err)
	}
	cfg.Digits = 5
	if _, err := mfa.NewCodes(cfg, []byte(strings.Repeat("x", 32)), newMemStore(), newMemStore()); err == nil {
		t.Fatal("5-digit codes accepted")
	}
}

func TestCodeRefusals(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		verify func(t *testing.T, c *mfa.Codes, clk *testClock, code string) error
		want   error
	}{
		{"expired", func(t *testing.T, c *mfa.Codes, clk *testClock, code string) error {
			clk.Advance(testConfig.Lifetime)
			return c.Verify(ctx, alice, code)
		}, mfa.ErrCodeExpired},
		{"other purpose", func(t *testing.T, c *mfa.Codes, _ *testClock, code string) error {
			s := alice
			s.Purpose = mfa.PurposeReset
			return c.Verify(ctx, s, code)
		}, mfa.ErrCodeInvalid},
		{"other transaction", func(t *testing.T, c *mfa.Codes, _ *testClock, code string) error {
			s := alice
			s.Binding = "tx-2"
			return c.Verify(ctx, s, code)
		}, mfa.ErrCodeInvalid},
		{"other user", func(t *testing.T, c *mfa.Codes, _ *testClock, code string) error {
			s := alice
			s.UserID = "bob"
			return c.Verify(ctx, s, code)
		}, mfa.ErrCodeInvalid},
		{"sixth try", func(t *testing.T, c *mfa.Codes, _ *testClock, code string) error {
			for i := 1; i < testConfig.MaxTries; i++ {
				if err := c.Verify(ctx, alice, wrongCode(code)); !errors.Is(err, mfa.ErrCodeInvalid) {
					t.Fatalf("wrong try %d: %v", i, err)
				}
			}
			// The try that voids the code already says so.
			if err := c.Verify(ctx, alice, wrongCode(code)); !errors.Is(err, mfa.ErrCodeVoided) {
				t.Fatalf("voiding try: %v", err)
			}
			return c.Verify(ctx, alice, code)
		}, mfa.ErrCodeVoided},
		{"replaced for another address", func(t *testing.T, c *mfa.Codes, clk *testClock, code string) error {
			clk.Advance(testConfig.ResendCooldown)
			if _, err := c.Replace(ctx, alice); err != nil {
				t.Fatal(err)
			}
			return c.Verify(ctx, alice, code)
		}, mfa.ErrCodeInvalid},
		{"another code of the set was used", func(t *testing.T, c *mfa.Codes, clk *testClock, code string) error {
			clk.Advance(testConfig.ResendCooldown)
			newer, err := c.Issue(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(ctx, alice, newer); err != nil {
				t.Fatal(err)
			}
			return c.Verify(ctx, alice, code)
		}, mfa.ErrCodeInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, clk := newCodes(t, testConfig)
			code, err := c.Issue(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.verify(t, c, clk, code); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestResetCodesLiveLonger(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCodes(t, testConfig)
	s := alice
	s.Purpose = mfa.PurposeReset
	code, _ := c.Issue(ctx, s)
	clk.Advance(testConfig.Lifetime + time.Minute)
	if err := c.Verify(ctx, s, code); err != nil {
		t.Fatalf("reset code within its 30 min: %v", err)
	}
	code, _ = c.Issue(ctx, s)
	clk.Advance(testConfig.ResetLifetime)
	if err := c.Verify(ctx, s, code); !errors.Is(err, mfa.ErrCodeExpired) {
		t.Fatalf("reset code after its lifetime: %v", err)
	}
}

func TestCooldownAndSendCap(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCodes(t, testConfig)
	if _, err := c.Issue(ctx, alice); err != nil {
		t.Fatal(err)
	}
	_, err := c.Issue(ctx, alice)
	var we *mfa.WaitError
	if !errors.Is(err, mfa.ErrCooldown) || !errors.As(err, &we) || we.Until.IsZero() {
		t.Fatalf("resend inside the cooldown: %v", err)
	}
	for i := 1; i < testConfig.SendsPerHour; i++ {
		clk.Advance(testConfig.ResendCooldown)
		if _, err := c.Issue(ctx, alice); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	clk.Advance(testConfig.ResendCooldown)
	if _, err := c.Issue(ctx, alice); !errors.Is(err, mfa.ErrSendLimit) {
		t.Fatalf("send over the hourly cap: %v", err)
	}
	clk.Advance(time.Hour)
	if _, err := c.Issue(ctx, alice); err != nil {
		t.Fatalf("send after the hour: %v", err)
	}
}

func TestCancelGivesBackCooldownAndSend(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig
	cfg.SendsPerHour = 1
	c, _, _ := newCodes(t, cfg)
	code, _ := c.Issue(ctx, alice)
	if err := c.Cancel(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, alice, code); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("cancelled code still valid: %v", err)
	}
	if _, err := c.Issue(ctx, alice); err != nil {
		t.Fatalf("issue after cancel: %v", err)
	}
}

func TestFailureBudgetSurvivesResendAndLocks(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCodes(t, testConfig)
	spent := 0
	for spent < testConfig.FailureLimit {
		code, err := c.Issue(ctx, alice)
		if err != nil {
			t.Fatalf("issue after %d failures: %v", spent, err)
		}
		for i := 0; i < 3 && spent < testConfig.FailureLimit; i++ {
			_ = c.Verify(ctx, alice, wrongCode(code))
			spent++
		}
		clk.Advance(testConfig.ResendCooldown)
	}
	if n, _ := c.Failures(ctx, alice.UserID); n != testConfig.FailureLimit {
		t.Fatalf("failures %d, want %d: resending reset the budget", n, testConfig.FailureLimit)
	}
	if _, err := c.Issue(ctx, alice); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("issue while locked: %v", err)
	}
	if err := c.Verify(ctx, alice, "000000"); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("verify in the locked session: %v", err)
	}
	clk.Advance(testConfig.FailureWindow)
	code, err := c.Issue(ctx, alice)
	if err != nil {
		t.Fatalf("issue after the lock expired: %v", err)
	}
	if err := c.Verify(ctx, alice, code); err != nil {
		t.Fatalf("verify after the lock expired: %v", err)
	}
}

func TestLockRefusesEvenTheRightCode(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig
	cfg.FailureLimit = 2
	c, _, _ := newCodes(t, cfg)
	code, _ := c.Issue(ctx, alice)
	_ = c.Verify(ctx, alice, wrongCode(code))
	_ = c.Verify(ctx, alice, wrongCode(code))
	if err := c.Verify(ctx, alice, code); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("right code while locked: %v", err)
	}
	if err := c.Unlock(ctx, alice.UserID); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, alice, code); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

// Parallel guesses in one session spend exactly the session's budget, and
// parallel guesses from many sessions exactly the account-wide ceiling: the
// budgets are spent in the store before the code is checked.
func TestParallelWrongCodesConsumeExactBudget(t *testing.T) {
	cases := []struct {
		name               string
		sessions, attempts int
		wantChecked        int
		wantAlarms         int
	}{
		{"one session", 1, 50, 20, 0},
		{"many sessions", 60, 60, 40, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig
			cfg.FailureLimit = 20
			cfg.AccountFailureLimit = 40
			cfg.MaxTries = 100
			var alarms atomic.Int32
			st := newMemStore()
			clk := &testClock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
			c, err := mfa.NewCodes(cfg, []byte(strings.Repeat("x", 32)), st, st, mfa.WithClock(clk.Now),
				mfa.WithCeilingAlarm(func(context.Context, string, time.Time) { alarms.Add(1) }))
			if err != nil {
				t.Fatal(err)
			}
			code, _ := c.Issue(ctx, alice)
			var wg sync.WaitGroup
			var checked atomic.Int32
			for i := 0; i < tc.attempts; i++ {
				s := alice
				s.Session = fmt.Sprintf("s-%d", i%tc.sessions)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.Verify(ctx, s, wrongCode(code)); errors.Is(err, mfa.ErrCodeInvalid) || errors.Is(err, mfa.ErrCodeVoided) {
						checked.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := int(checked.Load()); n != tc.wantChecked {
				t.Fatalf("%d guesses checked, want exactly %d", n, tc.wantChecked)
			}
			if n, _ := c.Failures(ctx, alice.UserID); n < tc.wantChecked {
				t.Fatalf("account failures %d, want at least %d", n, tc.wantChecked)
			}
			if n := int(alarms.Load()); n != tc.wantAlarms {
				t.Fatalf("%d ceiling alarms, want %d", n, tc.wantAlarms)
			}
		})
	}
}

// Issue #15 item 3: a password holder's wrong codes in their own session do
// not make the owner's correct code fail.
func TestWrongCodesInAnotherSessionDoNotLockTheOwner(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newCodes(t, testConfig)
	owner := mfa.Subject{UserID: "alice", Purpose: mfa.PurposeLogin, Session: "owner"}
	code, err := c.Issue(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < testConfig.FailureLimit+1; i++ {
		attacker := owner
		attacker.Session = "attacker"
		_ = c.Verify(ctx, attacker, wrongCode(code))
	}
	attacker := owner
	attacker.Session = "attacker"
	if err := c.Verify(ctx, attacker, code); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("attacker's session after its budget: %v, want locked", err)
	}
	if err := c.Verify(ctx, owner, code); err != nil {
		t.Fatalf("owner's correct code after %d wrong ones elsewhere: %v", testConfig.FailureLimit, err)
	}
}

// The account-wide ceiling stops a guesser spreading tries over sessions,
// raises the alarm once, and does not stop the owner's browser (device).
func TestAccountCeilingStopsDistributedGuesserButNotOwnerDevice(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	clk := &testClock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	var alarmed []string
	c, err := mfa.NewCodes(testConfig, []byte(strings.Repeat("x", 32)), st, st, mfa.WithClock(clk.Now),
		mfa.WithCeilingAlarm(func(_ context.Context, userID string, until time.Time) {
			if until.IsZero() {
				t.Error("alarm without the end of the lock")
			}
			alarmed = append(alarmed, userID)
		}))
	if err != nil {
		t.Fatal(err)
	}
	login := mfa.Subject{UserID: "alice", Purpose: mfa.PurposeLogin}
	code, err := c.Issue(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < testConfig.AccountFailureLimit+5; i++ {
		s := login
		s.Session = fmt.Sprintf("guesser-%d", i/3)
		_ = c.Verify(ctx, s, wrongCode(code))
	}
	if len(alarmed) != 1 || alarmed[0] != "alice" {
		t.Fatalf("alarms %v, want one for alice", alarmed)
	}
	fresh := login
	fresh.Session = "fresh"
	if err := c.Verify(ctx, fresh, code); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("new session after the ceiling: %v, want locked", err)
	}
	if err := c.SpendTry(ctx, fresh); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("another factor after the ceiling: %v, want locked", err)
	}
	if _, err := c.Issue(ctx, fresh); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("issue to a new session after the ceiling: %v, want locked", err)
	}
	if locked, until, _ := c.Lock(ctx, "alice"); !locked || until.IsZero() {
		t.Fatal("Lock does not report the ceiling")
	}
	// The owner's browser: a few typos of its own, then the right code.
	owner := login
	owner.Session = "owner"
	owner.Device = "owner-device"
	_ = c.Verify(ctx, owner, wrongCode(code))
	if err := c.Verify(ctx, owner, code); err != nil {
		t.Fatalf("owner's device after the ceiling tripped elsewhere: %v", err)
	}
	if len(alarmed) != 1 {
		t.Fatalf("alarms %v, want still one", alarmed)
	}
}

// The owner's device has a small budget of its own, which a new session of
// the same browser does not refill.
func TestOwnerDeviceHasItsOwnBudget(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newCodes(t, testConfig)
	dev := mfa.Subject{UserID: "alice", Purpose: mfa.PurposeLogin, Session: "s-1", Device: "d-1"}
	for i := 0; i < testConfig.FailureLimit; i++ {
		if err := c.SpendTry(ctx, dev); err != nil {
			t.Fatalf("try %d: %v", i+1, err)
		}
	}
	dev.Session = "s-2"
	if err := c.SpendTry(ctx, dev); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("device over its budget in a new session: %v, want locked", err)
	}
	if n, _ := c.Failures(ctx, "alice"); n != 0 {
		t.Fatalf("the owner's device spent %d of the account-wide ceiling", n)
	}
	if err := c.Unlock(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.SpendTry(ctx, dev); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestAccountFailureLimitBounds(t *testing.T) {
	for _, n := range []int{0, testConfig.FailureLimit - 1, 101} {
		cfg := testConfig
		cfg.AccountFailureLimit = n
		if _, err := mfa.NewCodes(cfg, []byte(strings.Repeat("x", 32)), newMemStore(), newMemStore()); err == nil {
			t.Errorf("account failure limit %d accepted", n)
		}
	}
}

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{
		" 123456 ": "123456", "１２３４５６": "123456", "123-456": "123456", "123 456": "123456",
	} {
		if got := mfa.NormalizeCode(in); got != want {
			t.Errorf("NormalizeCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerifyAnyAcceptsEitherCodeForOneTry(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newCodes(t, testConfig)
	mailed := mfa.Subject{UserID: "alice", Purpose: mfa.PurposeReset, Binding: "session-1"}
	helpdesk := mfa.Subject{UserID: "alice", Purpose: mfa.PurposeReset, Binding: "helpdesk"}
	if _, err := c.Issue(ctx, mailed); err != nil {
		t.Fatal(err)
	}
	code, err := c.IssueFor(ctx, helpdesk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyAny(ctx, "000000x", mailed, helpdesk); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("wrong code: %v", err)
	}
	if n, _ := c.Failures(ctx, "alice"); n != 1 {
		t.Fatalf("one wrong entry cost %d tries, want 1", n)
	}
	got, err := c.VerifyAny(ctx, code, mailed, helpdesk)
	if err != nil || got != helpdesk {
		t.Fatalf("helpdesk code: %v %v", got, err)
	}
	if _, err := c.VerifyAny(ctx, code, mfa.Subject{UserID: "bob", Purpose: mfa.PurposeReset, Binding: "helpdesk"}); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("alice's helpdesk code worked for bob: %v", err)
	}
}

// Codes mailed earlier keep working after a resend, up to MaxOutstanding of
// them; each wrong entry costs one unit of the budget however many codes
// are outstanding.
func TestOutstandingCodes(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCodes(t, testConfig)
	var codes []string
	for i := 0; i < testConfig.MaxOutstanding+1; i++ {
		code, err := c.Issue(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, code)
		clk.Advance(testConfig.ResendCooldown)
	}
	if err := c.Verify(ctx, alice, "x"); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("wrong entry: %v", err)
	}
	if n, _ := c.Failures(ctx, "alice"); n != 1 {
		t.Fatalf("one wrong entry against %d codes cost %d, want 1", testConfig.MaxOutstanding, n)
	}
	if err := c.Verify(ctx, alice, codes[0]); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("code beyond max_outstanding still valid: %v", err)
	}
	if sent, err := c.Outstanding(ctx, alice); err != nil || sent.IsZero() {
		t.Fatalf("Outstanding: %v %v", sent, err)
	}
	if err := c.Verify(ctx, alice, codes[1]); err != nil {
		t.Fatalf("earlier code after a resend: %v", err)
	}
	if err := c.Verify(ctx, alice, codes[3]); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("newer code after one was used: %v", err)
	}
	if sent, _ := c.Outstanding(ctx, alice); !sent.IsZero() {
		t.Fatal("Outstanding reports a code after use")
	}
}

// Wrong tries in one session void a code only for that session: the owner
// waiting in another keeps it.
func TestWrongTriesInOneSessionKeepTheCodeForAnother(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig
	c, _, _ := newCodes(t, cfg)
	code, err := c.Issue(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	other := alice
	other.Session = "s-2"
	for i := 0; i < cfg.MaxTries; i++ {
		_ = c.Verify(ctx, other, wrongCode(code))
	}
	if err := c.Verify(ctx, other, code); !errors.Is(err, mfa.ErrCodeVoided) {
		t.Fatalf("guessing session: %v, want voided", err)
	}
	if err := c.Verify(ctx, alice, code); err != nil {
		t.Fatalf("owner's session: %v", err)
	}
}

func TestCooldownIsPerBinding(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newCodes(t, testConfig)
	login := mfa.Subject{UserID: "alice", Purpose: mfa.PurposeLogin, Session: "s-1"}
	if _, err := c.Issue(ctx, login); err != nil {
		t.Fatal(err)
	}
	again := login
	again.Session = "s-2" // another login, another browser: same user-wide binding
	if _, err := c.Issue(ctx, again); !errors.Is(err, mfa.ErrCooldown) {
		t.Fatalf("second mail within the cooldown: %v", err)
	}
}

func TestMaxOutstandingValidated(t *testing.T) {
	for _, n := range []int{0, 11} {
		cfg := testConfig
		cfg.MaxOutstanding = n
		if _, err := mfa.NewCodes(cfg, []byte(strings.Repeat("x", 32)), newMemStore(), newMemStore()); err == nil {
			t.Errorf("MaxOutstanding %d accepted", n)
		}
	}
}

func TestUsedCodeEndsTheCooldown(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newCodes(t, testConfig)
	code, _ := c.Issue(ctx, alice)
	if err := c.Verify(ctx, alice, code); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Issue(ctx, alice); err != nil {
		t.Fatalf("a new login right after a used code: %v", err)
	}
}

func TestVoidWithdrawsCodesAndCooldown(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newCodes(t, testConfig)
	code, _ := c.Issue(ctx, alice)
	if err := c.Void(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, alice, code); !errors.Is(err, mfa.ErrCodeInvalid) {
		t.Fatalf("voided code: %v", err)
	}
	if _, err := c.Issue(ctx, alice); err != nil {
		t.Fatalf("issue right after Void: %v", err)
	}
}
