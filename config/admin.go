package config

import (
	"fmt"
	"strings"
	"time"
)

// Admin is the helpdesk and admin console (/admin/) and how closely the IdP
// follows the directory's account status.
type Admin struct {
	// HelpdeskGroups are directory groups whose members are helpdesk staff:
	// they look users up, issue reset confirmation codes, unlock budgets,
	// end sessions and read the audit log.
	HelpdeskGroups []string `yaml:"helpdesk_groups"`
	// AdminGroups are directory groups whose members are admins: everything
	// the helpdesk does, and clearing a user's second factors.
	AdminGroups []string `yaml:"admin_groups"`
	// ReauthWindow is how long a second factor entered in this session
	// opens the console; after it staff re-enter password and code. A
	// trusted browser never counts.
	ReauthWindow time.Duration `yaml:"reauth_window"`
	// AccountCheckInterval is how long a directory answer about a signed-in
	// account (disabled? which groups?) is reused before it is asked again.
	AccountCheckInterval time.Duration `yaml:"account_check_interval"`
	// AuditPageSize is the number of events per page of the audit viewer.
	AuditPageSize int `yaml:"audit_page_size"`
	// RecentEvents is the number of audit events shown with a user.
	RecentEvents int `yaml:"recent_events"`
}

func defaultAdmin() Admin {
	return Admin{
		HelpdeskGroups:       []string{"idp-helpdesk"},
		AdminGroups:          []string{"idp-admins"},
		ReauthWindow:         15 * time.Minute,
		AccountCheckInterval: time.Minute,
		AuditPageSize:        50,
		RecentEvents:         20,
	}
}

func (a Admin) validate(v *validator, p string) {
	seen := map[string]string{}
	groups := func(key string, list []string) {
		for i, g := range list {
			path := fmt.Sprintf("%s.%s[%d]", p, key, i)
			if strings.TrimSpace(g) == "" {
				v.add(path, "is empty; give a group name such as idp-admins")
				continue
			}
			if g != strings.TrimSpace(g) {
				v.add(path, "has leading or trailing spaces (%q)", g)
				continue
			}
			// Directory group names compare without regard to case.
			folded := strings.ToLower(g)
			if first, dup := seen[folded]; dup {
				v.add(path, "repeats %s; a group belongs in one list only (admins can do all the helpdesk does)", first)
				continue
			}
			seen[folded] = path
		}
	}
	groups("admin_groups", a.AdminGroups)
	groups("helpdesk_groups", a.HelpdeskGroups)
	v.duration(p+".reauth_window", a.ReauthWindow, 12*time.Hour)
	v.duration(p+".account_check_interval", a.AccountCheckInterval, time.Hour)
	v.intRange(p+".audit_page_size", a.AuditPageSize, 10, 1000)
	v.intRange(p+".recent_events", a.RecentEvents, 1, 200)
}
