package ldapstore

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jimlambrt/gldap"
)

// fakeServer is a scripted LDAP server for result codes a real slapd will
// not produce on demand (busy, unavailable, refused binds).
type fakeServer struct {
	url          string
	searchCode   atomic.Int32 // result of the user search
	userBindCode atomic.Int32 // result of binds other than the service account's
	searches     atomic.Int32
	userBinds    atomic.Int32

	mu        sync.Mutex
	passwords []string // passwords received in user binds
}

const (
	fakeServiceDN = "cn=svc,dc=example"
	fakeUserDN    = "uid=alice,ou=people,dc=example"
)

func startFake(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	mux, err := gldap.NewMux()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(mux.Bind(func(w *gldap.ResponseWriter, r *gldap.Request) {
		resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
		defer func() { _ = w.Write(resp) }()
		m, err := r.GetSimpleBindMessage()
		if err != nil {
			return
		}
		if m.UserName == fakeServiceDN {
			resp.SetResultCode(gldap.ResultSuccess)
			return
		}
		f.userBinds.Add(1)
		f.mu.Lock()
		f.passwords = append(f.passwords, string(m.Password))
		f.mu.Unlock()
		resp.SetResultCode(int(f.userBindCode.Load()))
	}))
	must(mux.Search(func(w *gldap.ResponseWriter, r *gldap.Request) {
		m, err := r.GetSearchMessage()
		if err != nil {
			_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultOperationsError)))
			return
		}
		if m.Scope == gldap.BaseObject {
			// Disabled check: nobody is disabled here.
			_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess)))
			return
		}
		f.searches.Add(1)
		code := int(f.searchCode.Load())
		if code == gldap.ResultSuccess || code == gldap.ResultSizeLimitExceeded {
			_ = w.Write(r.NewSearchResponseEntry(fakeUserDN, gldap.WithAttributes(map[string][]string{"uid": {"alice"}})))
		}
		_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(code)))
	}))

	srv, err := gldap.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	must(srv.Router(mux))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	go func() { _ = srv.Run(addr) }()
	for deadline := time.Now().Add(5 * time.Second); !srv.Ready(); {
		if time.Now().After(deadline) {
			t.Fatal("fake LDAP server did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	f.url = "ldap://" + addr
	return f
}

func TestResultCodeMapping(t *testing.T) {
	f := startFake(t)
	cfg := validConfig()
	cfg.URLs = []string{f.url}
	cfg.BindDN = fakeServiceDN
	cfg.UserBaseDN = "ou=people,dc=example"
	cfg.DisabledFilter = "(employeeType=disabled)"
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	const typed = "  exact Pässwort 秘密 "
	tests := []struct {
		name         string
		searchCode   int
		bindCode     int
		wantOutage   bool
		wantReason   string
		wantSearches int32 // busy and unavailable are retried exactly once
		wantBinds    int32
	}{
		{"success", ldap.LDAPResultSuccess, ldap.LDAPResultSuccess, false, "", 1, 1},
		{"wrong password", ldap.LDAPResultSuccess, ldap.LDAPResultInvalidCredentials, false, ReasonWrongPassword, 1, 1},
		{"account locked (constraint violation)", ldap.LDAPResultSuccess, ldap.LDAPResultConstraintViolation, false, ReasonAccountRefused, 1, 1},
		{"account inactivated (unwilling)", ldap.LDAPResultSuccess, ldap.LDAPResultUnwillingToPerform, false, ReasonAccountRefused, 1, 1},
		{"bind busy", ldap.LDAPResultSuccess, ldap.LDAPResultBusy, true, "", 1, 2},
		{"bind unavailable", ldap.LDAPResultSuccess, ldap.LDAPResultUnavailable, true, "", 1, 2},
		{"bind other error", ldap.LDAPResultSuccess, ldap.LDAPResultOther, true, "", 1, 1},
		{"search busy", ldap.LDAPResultBusy, ldap.LDAPResultSuccess, true, "", 2, 0},
		{"search unavailable", ldap.LDAPResultUnavailable, ldap.LDAPResultSuccess, true, "", 2, 0},
		{"search base missing", ldap.LDAPResultNoSuchObject, ldap.LDAPResultSuccess, true, "", 1, 0},
		{"search size limit", ldap.LDAPResultSizeLimitExceeded, ldap.LDAPResultSuccess, false, ReasonAmbiguousID, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.searchCode.Store(int32(tt.searchCode))
			f.userBindCode.Store(int32(tt.bindCode))
			f.searches.Store(0)
			f.userBinds.Store(0)
			f.mu.Lock()
			f.passwords = nil
			f.mu.Unlock()

			u, err := d.Authenticate(context.Background(), "alice", typed)
			switch {
			case tt.wantOutage:
				if !errors.Is(err, ErrDirectoryUnavailable) || errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("got %v, want only ErrDirectoryUnavailable", err)
				}
			case tt.wantReason != "":
				if FailureReason(err) != tt.wantReason {
					t.Fatalf("got %v (%q), want %q", err, FailureReason(err), tt.wantReason)
				}
			default:
				if err != nil || u == nil || u.DN != fakeUserDN {
					t.Fatalf("got %+v, %v", u, err)
				}
			}
			if got := f.searches.Load(); got != tt.wantSearches {
				t.Errorf("user searches = %d, want %d", got, tt.wantSearches)
			}
			if got := f.userBinds.Load(); got != tt.wantBinds {
				t.Errorf("user binds = %d, want %d", got, tt.wantBinds)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, pw := range f.passwords {
				if pw != typed {
					t.Errorf("server received password %q, want it exactly as typed %q", pw, typed)
				}
			}
		})
	}
}
