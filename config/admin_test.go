package config

import (
	"reflect"
	"testing"
	"time"
)

func TestAdminValidateRules(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Admin)
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"defaults", func(*Admin) {}, "", ""},
		{"several groups per role", func(a *Admin) {
			a.HelpdeskGroups = []string{"idp-helpdesk", "ict-support"}
			a.AdminGroups = []string{"idp-admins", "ict-admins"}
		}, "", ""},
		{"no helpdesk role", func(a *Admin) { a.HelpdeskGroups = nil }, "", ""},
		{"empty group name", func(a *Admin) { a.AdminGroups = []string{"idp-admins", " "} }, "admin.admin_groups[1]", "empty"},
		{"padded group name", func(a *Admin) { a.HelpdeskGroups = []string{" idp-helpdesk"} }, "admin.helpdesk_groups[0]", "spaces"},
		{"group in both lists", func(a *Admin) { a.HelpdeskGroups = []string{"IDP-Admins"} }, "admin.helpdesk_groups[0]", "admin.admin_groups[0]"},
		{"group twice in one list", func(a *Admin) { a.AdminGroups = []string{"x", "x"} }, "admin.admin_groups[1]", "one list only"},
		{"reauth window zero", func(a *Admin) { a.ReauthWindow = 0 }, "admin.reauth_window", "greater than 0"},
		{"reauth window too long", func(a *Admin) { a.ReauthWindow = 13 * time.Hour }, "admin.reauth_window", "at most 12h"},
		{"check interval zero", func(a *Admin) { a.AccountCheckInterval = 0 }, "admin.account_check_interval", "greater than 0"},
		{"check interval too long", func(a *Admin) { a.AccountCheckInterval = 2 * time.Hour }, "admin.account_check_interval", "at most 1h"},
		{"page size too small", func(a *Admin) { a.AuditPageSize = 5 }, "admin.audit_page_size", "between 10 and 1000"},
		{"page size too large", func(a *Admin) { a.AuditPageSize = 1001 }, "admin.audit_page_size", "between 10 and 1000"},
		{"recent events zero", func(a *Admin) { a.RecentEvents = 0 }, "admin.recent_events", "between 1 and 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c.Admin)
			expectValidation(t, c.Validate(), tt.wantPath, tt.wantMsg, true)
		})
	}
}

func TestParseAdminSection(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Admin
	}{
		{"absent keeps defaults", "", defaultAdmin()},
		{"lists replace the defaults", `
admin:
  helpdesk_groups: [ict-support]
  admin_groups: [ict-admins, idp-admins]
  reauth_window: 5m
  account_check_interval: 30s
  audit_page_size: 100
  recent_events: 5
`, Admin{
			HelpdeskGroups: []string{"ict-support"}, AdminGroups: []string{"ict-admins", "idp-admins"},
			ReauthWindow: 5 * time.Minute, AccountCheckInterval: 30 * time.Second, AuditPageSize: 100, RecentEvents: 5,
		}},
		{"empty list removes a role", `
admin:
  helpdesk_groups: []
`, func() Admin { a := defaultAdmin(); a.HelpdeskGroups = []string{}; return a }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(requiredYAML + tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(cfg.Admin, tt.want) {
				t.Errorf("admin = %+v, want %+v", cfg.Admin, tt.want)
			}
		})
	}
}

func TestParseAdminRejectsUnknownKeys(t *testing.T) {
	_, err := Parse([]byte(requiredYAML + "admin:\n  admin_group: idp-admins\n"))
	if findFieldError(t, err, "admin.admin_group") == nil {
		t.Fatalf("misspelt key accepted: %v", err)
	}
}
