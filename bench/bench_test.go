package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole harness briefly: a real slapd, the SMTP sink and
// `idp serve` built from this tree, a few users enrolled through the pages,
// and every scenario (password logins, OIDC with RS256 and ES256 keys,
// refresh, SAML) for two seconds each, with no errors.
// It proves the machinery, not the speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the idp binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	o := options{users: 6, workers: 2, duration: 2 * time.Second, warmup: 300 * time.Millisecond, settle: 100 * time.Millisecond,
		algs: []string{"RS256", "ES256"}, logLevel: "warn"}
	if err := run(ctx, o, &out, io.MultiWriter(&log)); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), log.String())
	}
	table := out.String()
	rows := []struct{ scenario, alg string }{
		{"login-trusted", "-"}, {"login-email", "-"}, {"saml", "-"},
		{"oidc-trusted", "RS256"}, {"oidc-email", "RS256"}, {"refresh", "RS256"},
		{"oidc-trusted", "ES256"}, {"oidc-email", "ES256"}, {"refresh", "ES256"},
	}
	for _, r := range rows {
		row := regexp.MustCompile(`(?m)^\s*` + r.scenario + `\s+` + r.alg + `\s+([0-9.]+)\s+\S+\s+\S+\s+(\d+)\s`).FindStringSubmatch(table)
		if row == nil {
			t.Fatalf("no row for %s/%s in:\n%s", r.scenario, r.alg, table)
		}
		if row[1] == "0.0" || row[2] != "0" {
			t.Errorf("%s/%s: %s logins/s with %s errors, want some logins and no errors:\n%s", r.scenario, r.alg, row[1], row[2], table)
		}
	}
	if !strings.Contains(log.String(), "enrolled 6 users") {
		t.Errorf("the log does not report the enrollment:\n%s", log.String())
	}
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
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime of no process succeeded")
	}
}
