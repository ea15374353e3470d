package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/campusidp/campusidp/internal/testldap"
)

// ceiling is the directory's own rate for the directory work of one
// password check, measured without the IdP: what no login scenario can
// exceed on this machine with this slapd.
type ceiling struct {
	rate     float64 // checks per second
	checks   int
	errors   int
	window   time.Duration
	slapdCPU time.Duration
	benchCPU time.Duration
	otherCPU time.Duration
	sample   string // one error, if any
}

// slapdCPUPerCheck is slapd's CPU time per check.
func (c ceiling) slapdCPUPerCheck() time.Duration {
	if c.checks == 0 {
		return 0
	}
	return c.slapdCPU / time.Duration(c.checks)
}

// measureLDAPCeiling runs, with workers concurrent loops for warmup and
// then duration, what the IdP's directory does for one password check
// (ldapstore.Directory.Authenticate): a subtree search for the user with
// the service account, the base search of the disabled filter on the
// entry, and a simple bind as the user on a second connection. Each loop
// holds its own two connections, bound once, as the IdP's two pools do.
func measureLDAPCeiling(ctx context.Context, ls *testldap.Server, users []*vuser, workers int, warmup, duration time.Duration) (ceiling, error) {
	lc := ls.Config()
	var (
		recording, stopping atomic.Bool
		checks, errs        atomic.Int64
		sampleMu            sync.Mutex
		sample              string
		wg                  sync.WaitGroup
		setupErr            error
		setupOnce           sync.Once
	)
	ready := make(chan struct{}, workers)
	for w := range workers {
		var mine []*vuser
		for i := w; i < len(users); i += workers {
			mine = append(mine, users[i])
		}
		wg.Go(func() {
			svc, bind, err := ceilingConns(ls.URL, lc.BindDN, lc.BindPassword)
			ready <- struct{}{}
			if err != nil {
				setupOnce.Do(func() { setupErr = err })
				return
			}
			defer svc.Close()
			defer bind.Close()
			for k := 0; !stopping.Load() && ctx.Err() == nil; k++ {
				u := mine[k%len(mine)]
				err := directoryCheck(svc, bind, lc.UserBaseDN, lc.UserFilter, lc.DisabledFilter, u)
				if !recording.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					sampleMu.Lock()
					if sample == "" {
						sample = fmt.Sprintf("%s: %v", u.account.ID, err)
					}
					sampleMu.Unlock()
					continue
				}
				checks.Add(1)
			}
		})
	}
	for range workers {
		<-ready
	}
	if setupErr != nil {
		stopping.Store(true)
		wg.Wait()
		return ceiling{}, setupErr
	}
	sleep(ctx, warmup)
	t0 := time.Now()
	slapd0, _ := cpuTime(ls.PID())
	self0 := selfCPU()
	machine0, _ := machineBusy()
	recording.Store(true)
	sleep(ctx, duration)
	recording.Store(false)
	c := ceiling{window: time.Since(t0)}
	slapd1, _ := cpuTime(ls.PID())
	self1 := selfCPU()
	machine1, _ := machineBusy()
	stopping.Store(true)
	wg.Wait()
	if ctx.Err() != nil {
		return c, ctx.Err()
	}
	c.checks, c.errors, c.sample = int(checks.Load()), int(errs.Load()), sample
	c.rate = float64(c.checks) / c.window.Seconds()
	c.slapdCPU, c.benchCPU = slapd1-slapd0, self1-self0
	c.otherCPU = max(0, machine1-machine0-c.slapdCPU-c.benchCPU)
	return c, nil
}

// ceilingConns opens a connection bound as the service account (searches)
// and one for the users' binds.
func ceilingConns(url, bindDN, bindPassword string) (svc, bind *ldap.Conn, err error) {
	if svc, err = ldap.DialURL(url); err != nil {
		return nil, nil, err
	}
	if err = svc.Bind(bindDN, bindPassword); err != nil {
		svc.Close()
		return nil, nil, fmt.Errorf("service bind: %w", err)
	}
	if bind, err = ldap.DialURL(url); err != nil {
		svc.Close()
		return nil, nil, err
	}
	return svc, bind, nil
}

// ceilingAttrs are the attributes the bench's IdP reads from a user entry
// (the default claims' sources, groups through memberOf, and the extra
// attribute of its config).
var ceilingAttrs = []string{"uid", "cn", "displayName", "givenName", "sn", "mail", "memberOf", "employeeType"}

// directoryCheck is one password check's directory work for u.
func directoryCheck(svc, bind *ldap.Conn, base, filter, disabled string, u *vuser) error {
	res, err := svc.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 10, false,
		strings.ReplaceAll(filter, "{id}", ldap.EscapeFilter(u.account.ID)), ceilingAttrs, nil))
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if len(res.Entries) != 1 {
		return fmt.Errorf("search found %d entries", len(res.Entries))
	}
	dn := res.Entries[0].DN
	if disabled != "" {
		res, err := svc.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 10, false,
			disabled, []string{"1.1"}, nil))
		if err != nil {
			return fmt.Errorf("disabled check: %w", err)
		}
		if len(res.Entries) != 0 {
			return errors.New("the account is disabled")
		}
	}
	if err := bind.Bind(dn, u.account.Password); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}
