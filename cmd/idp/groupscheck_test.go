package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

// TestStartWarnsAboutMissingMemberOf: serve's start-up check against a real
// slapd warns, with the fix, when ldap.groups.mode is memberof and the
// directory has no memberof overlay; with the overlay it says nothing
// (issue 14, item 9).
func TestStartWarnsAboutMissingMemberOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []testldap.Option
		warn bool
	}{
		{"with the overlay", nil, false},
		{"without the overlay", []testldap.Option{testldap.WithoutMemberOf()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, err := ldapstore.New(testldap.Start(t, tt.opts...).Config(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dir.Close()
			var logs bytes.Buffer
			checkDirectoryGroups(context.Background(), dir, slog.New(slog.NewTextHandler(&logs, nil)))
			got := logs.String()
			if warned := strings.Contains(got, "level=WARN") && strings.Contains(got, "memberof overlay") &&
				strings.Contains(got, "ldap.groups.mode: search"); warned != tt.warn {
				t.Errorf("warned = %v, want %v; log:\n%s", warned, tt.warn, got)
			}
		})
	}
}
