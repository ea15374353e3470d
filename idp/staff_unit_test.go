package idp

import (
	"testing"
	"time"

	"github.com/campusidp/campusidp/config"
)

func TestCSVSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"alice", "alice"},
		{"login_failed", "login_failed"},
		{"127.0.0.1", "127.0.0.1"},
		{"2026-04-01T09:00:00Z", "2026-04-01T09:00:00Z"},
		{"a=b", "a=b"},
		{"=1+1", "'=1+1"},
		{`=HYPERLINK("http://x")`, `'=HYPERLINK("http://x")`},
		{"+81-75", "'+81-75"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"  =1", "'  =1"},
		{"   ", "   "},
		{"＝1+1", "'＝1+1"},
		{"＋81", "'＋81"},
		{"－2", "'－2"},
		{"＠SUM(A1)", "'＠SUM(A1)"},
		{"\u3000＝1", "'\u3000＝1"},
		{"−1", "'−1"},
		{"﹦1", "'﹦1"},
		{"ａｌｉｃｅ", "ａｌｉｃｅ"},
		{"ユーザー＝1", "ユーザー＝1"},
	}
	for _, tt := range tests {
		if got := csvSafe(tt.in); got != tt.want {
			t.Errorf("csvSafe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRoleFor(t *testing.T) {
	cfg := config.Default()
	cfg.Admin.HelpdeskGroups = []string{"idp-helpdesk", "ict-support"}
	cfg.Admin.AdminGroups = []string{"idp-admins"}
	a := &App{cfg: &cfg}
	tests := []struct {
		groups []string
		want   Role
	}{
		{nil, RoleNone},
		{[]string{"students", "staff"}, RoleNone},
		{[]string{"idp-helpdesk"}, RoleHelpdesk},
		{[]string{"ICT-Support"}, RoleHelpdesk},
		{[]string{"idp-helpdesk-old"}, RoleNone},
		{[]string{"idp-admins"}, RoleAdmin},
		{[]string{"idp-helpdesk", "IDP-ADMINS"}, RoleAdmin},
		{[]string{"IDP-ADMINS", "idp-helpdesk"}, RoleAdmin},
	}
	for _, tt := range tests {
		if got := a.RoleFor(tt.groups); got != tt.want {
			t.Errorf("RoleFor(%q) = %v, want %v", tt.groups, got, tt.want)
		}
	}
}

func TestParseAuditTime(t *testing.T) {
	local := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.Local)
	}
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"2026-04-01T09:30", local(2026, 4, 1, 9, 30, 0), false},
		{"2026-04-01T09:30:15", local(2026, 4, 1, 9, 30, 15), false},
		{"2026-04-01 09:30", local(2026, 4, 1, 9, 30, 0), false},
		{"2026-04-01", local(2026, 4, 1, 0, 0, 0), false},
		{"2026-04-01T09:30:00Z", time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC), false},
		{"2026-04-01T18:30:00+09:00", time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"2026-13-01", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := ParseAuditTime(tt.in)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("ParseAuditTime(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
