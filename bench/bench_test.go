package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testpg"
)

// TestSmoke runs the whole harness briefly: a real slapd, the SMTP sink and
// `idp serve` built from this tree, a few users enrolled through the pages,
// and every scenario (password logins, OIDC for an RS256 and an ES256
// relying party, password-only OIDC for users who never enrolled, refresh,
// SAML) for two seconds each, with no errors, the
// directory ceiling measured, and each row's share of it and store work
// per login reported. It proves the machinery, not the speed.
func TestSmoke(t *testing.T) {
	// 24 users: every email scenario runs on the one IdP, and a user's
	// mailed codes are limited to mfa.email.sends_per_hour (100).
	o := options{users: 24, workers: 2, duration: 2 * time.Second, warmup: 300 * time.Millisecond, settle: 100 * time.Millisecond,
		algs: []string{"RS256", "ES256"}, logLevel: "warn", store: "sqlite"}
	smoke(t, o, []smokeRow{
		{"login-trusted", "-"}, {"login-email", "-"}, {"saml", "-"},
		{"oidc-trusted", "RS256"}, {"oidc-password", "RS256"}, {"oidc-email", "RS256"}, {"refresh", "RS256"},
		{"oidc-trusted", "ES256"}, {"oidc-password", "ES256"}, {"oidc-email", "ES256"}, {"refresh", "ES256"},
	})
}

// TestSmokePostgres runs the OIDC scenarios with -store postgres: the IdP
// on a database of its own on the tests' PostgreSQL server (dropped after),
// and the server's CPU reported in its column.
func TestSmokePostgres(t *testing.T) {
	testpg.DSN(t) // skips (fails under CI=true) when the server does not answer
	o := options{users: 8, workers: 2, duration: 2 * time.Second, warmup: 300 * time.Millisecond, settle: 100 * time.Millisecond,
		algs: []string{"ES256"}, logLevel: "warn", store: "postgres",
		scenarios: []string{"oidc-password", "oidc-trusted", "refresh"}}
	table := smoke(t, o, []smokeRow{{"oidc-password", "ES256"}, {"oidc-trusted", "ES256"}, {"refresh", "ES256"}})
	if !strings.Contains(table, "store postgres;") {
		t.Errorf("the header does not name the store:\n%s", table)
	}
	pg := regexp.MustCompile(`(?m)^\s*oidc-trusted\s+ES256\s.*\s([0-9.]+)\s+[0-9.]+\s+[0-9.]+\s*$`).FindStringSubmatch(table)
	if pg == nil || pg[1] == "0.0" {
		t.Errorf("no PostgreSQL CPU in the oidc-trusted row:\n%s", table)
	}
}

type smokeRow struct{ scenario, alg string }

// smoke runs the harness with o and checks each row of rows; it returns
// the table.
func smoke(t *testing.T, o options, rows []smokeRow) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the idp binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	if err := run(ctx, o, &out, io.MultiWriter(&log)); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), log.String())
	}
	table := out.String()
	t.Logf("%s", table)
	ceil := regexp.MustCompile(`(?m)^directory ceiling .*: ([0-9.]+)/s, .* errors 0$`).FindStringSubmatch(table)
	if ceil == nil || ceil[1] == "0.0" {
		t.Fatalf("no directory ceiling with a positive rate and no errors in:\n%s", table)
	}
	header := regexp.MustCompile(`(?m)^\s*scenario\s+alg\s+logins/s\s+of ceiling\s+p50\s+p99\s+errors\s+write tx/login\s+stmts/login\s+writes/login\s`)
	if !header.MatchString(table) {
		t.Fatalf("the table lacks the share and store columns:\n%s", table)
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v
	}
	for _, r := range rows {
		row := regexp.MustCompile(`(?m)^\s*` + r.scenario + `\s+` + r.alg +
			`\s+([0-9.]+)\s+(\d+)%\s+\S+\s+\S+\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s`).FindStringSubmatch(table)
		if row == nil {
			t.Fatalf("no row for %s/%s in:\n%s", r.scenario, r.alg, table)
		}
		rate, share, errs, tx, stmts, writes := num(row[1]), num(row[2]), row[3], num(row[4]), num(row[5]), num(row[6])
		if rate == 0 || errs != "0" {
			t.Errorf("%s/%s: %v logins/s with %s errors, want some logins and no errors:\n%s", r.scenario, r.alg, rate, errs, table)
		}
		if share <= 0 {
			t.Errorf("%s/%s: %v%% of the ceiling", r.scenario, r.alg, share)
		}
		// Every login writes (its session, audit, counters or tokens), in
		// at least one transaction, and each transaction has a write.
		if tx <= 0 || writes < tx || stmts < writes {
			t.Errorf("%s/%s: %v write tx, %v statements, %v writes per login: want 0 < tx <= writes <= statements:\n%s",
				r.scenario, r.alg, tx, stmts, writes, table)
		}
	}
	if want := fmt.Sprintf("enrolled %d users", o.users); !strings.Contains(log.String(), want) {
		t.Errorf("the log does not report the enrollment:\n%s", log.String())
	}
	return table
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
	}{
		{nil, false},
		{[]string{"-users", "10", "-c", "4", "-scenarios", "login-trusted,refresh"}, false},
		{[]string{"-scenarios", "nope"}, true},
		{[]string{"-users", "3", "-c", "4"}, true},
		{[]string{"-c", "0"}, true},
		{[]string{"-duration", "0s"}, true},
		{[]string{"-algs", "ES256,EdDSA"}, false},
		{[]string{"-algs", "HS256"}, true},
		{[]string{"-store", "postgres"}, false},
		{[]string{"-store", "mysql"}, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%v) err = %v, want error %v", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(i))
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{ms(7)}, 0.99, ms(7)},
		{"median of 100", hundred, 0.50, ms(50)},
		{"p99 of 100", hundred, 0.99, ms(99)},
		{"max", hundred, 1, ms(100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestProcReaders(t *testing.T) {
	// Burn a little CPU so the counters have moved.
	deadline := time.Now().Add(30 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	pid := os.Getpid()
	if d, err := cpuTime(pid); err != nil || d <= 0 {
		t.Errorf("cpuTime(self) = %v, %v; want a positive time", d, err)
	}
	if m, err := readMemory(pid); err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("readMemory(self) = %+v, %v; want 0 < RSS <= HWM", m, err)
	}
	if d, err := machineBusy(); err != nil || d <= 0 {
		t.Errorf("machineBusy() = %v, %v", d, err)
	}
	if tree, err := treeCPU(pid); err != nil || tree < selfCPU()-time.Second/clockTicks {
		t.Errorf("treeCPU(self) = %v, %v; want at least the process's own", tree, err)
	}
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime of no process succeeded")
	}
}
