// Command bench measures the IdP's full-login throughput, latency, CPU and
// memory on one machine. It starts a private slapd with generated users
// (SSHA passwords), an SMTP sink and `idp serve` as a child process with
// SQLite in a temporary directory, enrolls every user's mailed one-time
// password and trusted browser through the real pages, and then drives
// each scenario with concurrent virtual browsers for a fixed time:
//
//	go run ./bench                       # all scenarios, 1,000 users, 32 browsers, 20s each
//	go run ./bench -c 8 -duration 5s -scenarios login-trusted
//	go run ./bench -profile /tmp/prof    # also save a CPU profile of the IdP per scenario
//
// Everything listens on 127.0.0.1 only and stops when the run ends.
// See bench/README.md for the recorded figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	if err := run(ctx, opts, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	users      int
	workers    int
	duration   time.Duration
	warmup     time.Duration
	settle     time.Duration // pause before each scenario and before reading idle RSS
	scenarios  []string
	algs       []string
	idpBinary  string
	profileDir string
	logLevel   string
	store      string // the IdP's store.driver: sqlite or postgres
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var scen, algs string
	fs.IntVar(&o.users, "users", 1000, "generated directory users, all enrolled (SSHA passwords)")
	fs.IntVar(&o.workers, "c", 32, "concurrent virtual browsers")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "timed window of each scenario")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "untimed load before each window")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "pause before each scenario (idle RSS is read after it)")
	fs.StringVar(&scen, "scenarios", "", "comma-separated scenarios (default all the IdP supports): "+scenarioNames())
	fs.StringVar(&algs, "algs", "RS256,ES256", "OIDC signing algorithms: one relying party signed with each (id_token_signed_response_alg), the OIDC scenarios run for each")
	fs.StringVar(&o.idpBinary, "idp", "", "prebuilt idp binary (default: go build ./cmd/idp)")
	fs.StringVar(&o.profileDir, "profile", "", "directory for a CPU profile of the IdP per scenario (opens its pprof listener on loopback)")
	fs.StringVar(&o.logLevel, "idp-log-level", "info", "the IdP's log level (its log goes to a file)")
	fs.StringVar(&o.store, "store", "sqlite", "the IdP's store: sqlite (a file in a temporary directory) or postgres (a fresh database on the tests' server at 127.0.0.1:5432, dropped after the run)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if scen != "" {
		o.scenarios = strings.Split(scen, ",")
		for _, s := range o.scenarios {
			if !slices.ContainsFunc(scenarios, func(sc scenario) bool { return sc.name == s }) {
				fmt.Fprintf(stderr, "bench: unknown scenario %q (known: %s)\n", s, scenarioNames())
				return o, errors.New("unknown scenario")
			}
		}
	}
	o.algs = strings.Split(algs, ",")
	for _, a := range o.algs {
		if a != "RS256" && a != "ES256" && a != "EdDSA" {
			fmt.Fprintf(stderr, "bench: unknown algorithm %q (RS256, ES256, EdDSA)\n", a)
			return o, errors.New("bad flags")
		}
	}
	switch {
	case o.users < 1 || o.workers < 1:
		fmt.Fprintln(stderr, "bench: -users and -c must be positive")
		return o, errors.New("bad flags")
	case o.users < o.workers:
		fmt.Fprintln(stderr, "bench: -users must be at least -c: one account never logs in twice at once")
		return o, errors.New("bad flags")
	case o.store != "sqlite" && o.store != "postgres":
		fmt.Fprintf(stderr, "bench: unknown store %q (sqlite, postgres)\n", o.store)
		return o, errors.New("bad flags")
	case o.duration <= 0 || o.warmup < 0 || o.settle < 0:
		fmt.Fprintln(stderr, "bench: -duration must be positive, -warmup and -settle not negative")
		return o, errors.New("bad flags")
	}
	return o, nil
}

func scenarioNames() string {
	var names []string
	for _, sc := range scenarios {
		names = append(names, sc.name)
	}
	return strings.Join(names, ",")
}

func (o options) wants(name string) bool {
	return len(o.scenarios) == 0 || slices.Contains(o.scenarios, name)
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }
	work, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	binary := o.idpBinary
	if binary == "" {
		start := time.Now()
		if binary, err = buildIdP(ctx, work); err != nil {
			return err
		}
		logf("built the idp binary in %s", time.Since(start).Round(100*time.Millisecond))
	}

	start := time.Now()
	ls, err := testldap.StartServer(testldap.WithUsers(o.users), testldap.WithPasswordOnlyUsers(o.users), testldap.WithQuietLog())
	if err != nil {
		return err
	}
	defer ls.Close()
	logf("slapd with %d generated users and %d password-only ones ready in %s (%s)", o.users, o.users, time.Since(start).Round(100*time.Millisecond), ls.URL)
	sink, err := testsmtp.StartServer(testsmtp.WithForgetTaken())
	if err != nil {
		return err
	}
	defer sink.Close()

	keys, err := newSAMLKeys()
	if err != nil {
		return err
	}

	results, ceil, notes, err := runIdP(ctx, o, binary, ls, sink, keys, logf)
	printTable(stdout, o, results, ceil, notes)
	if err != nil {
		return err
	}
	if ceil != nil && ceil.errors > 0 {
		return fmt.Errorf("the directory ceiling loop had %d errors (%s)", ceil.errors, ceil.sample)
	}
	for _, r := range results {
		if r.errors > 0 {
			return fmt.Errorf("%d scenario(s) had errors", countErrored(results))
		}
	}
	return nil
}

func countErrored(rs []result) int {
	n := 0
	for _, r := range rs {
		if r.errors > 0 {
			n++
		}
	}
	return n
}

// runIdP starts the IdP (a relying party per algorithm), enrolls the
// users, measures the directory's ceiling and runs the scenarios; the OIDC
// ones once per algorithm, the others once.
func runIdP(ctx context.Context, o options, binary string, ls *testldap.Server, sink *testsmtp.Server,
	keys *samlKeys, logf func(string, ...any)) (results []result, ceil *ceiling, notes []string, err error) {
	iopts := idpOptions{binary: binary, algs: o.algs, logLevel: o.logLevel, profile: o.profileDir != "", saml: keys}
	pgPID := 0
	if o.store == "postgres" {
		db, err := createPGDatabase(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		// Deferred before the IdP's Close, so it runs after it: the
		// database is dropped once nothing uses it.
		defer func() {
			if cerr := db.Close(); cerr != nil {
				logf("dropping the database %s: %v", db.name, cerr)
			}
		}()
		iopts.pgDSN, pgPID = db.DSN, db.ServerPID
		logf("postgres: database %s created on the server with pid %d", db.name, pgPID)
	}
	idp, err := startIdP(ctx, iopts, ls, sink)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			logf("idp log (last lines):\n%s", idp.LogTail(20))
		}
		_ = idp.Close()
	}()
	base, _ := url.Parse(idp.URL)
	transport := &http.Transport{
		MaxIdleConns:        2 * o.workers,
		MaxIdleConnsPerHost: 2 * o.workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	rpTransport := &http.Transport{MaxIdleConns: 2 * o.workers, MaxIdleConnsPerHost: 2 * o.workers, IdleConnTimeout: 90 * time.Second}
	defer rpTransport.CloseIdleConnections()

	sleep(ctx, time.Second)
	startRSS, _ := readMemory(idp.PID())

	t := &target{base: base, transport: transport, sink: sink}
	for i := range o.users {
		t.users = append(t.users, &vuser{index: i, account: testldap.GeneratedUser(i)})
		// Addresses after the enrolled users' (vuser.ip counts from index).
		t.pwUsers = append(t.pwUsers, &vuser{index: o.users + i, account: testldap.PasswordOnlyUser(i)})
	}
	rps := map[string]*rp{}
	for _, alg := range o.algs {
		r, err := newRP(ctx, idp.URL, alg, &http.Client{Transport: rpTransport, Timeout: 30 * time.Second})
		if errors.Is(err, errNoOIDC) {
			notes = append(notes, "The IdP has no OpenID Connect provider yet: the OIDC scenarios (oidc-trusted, oidc-email, refresh) were skipped.")
			rps = nil
			break
		}
		if err != nil {
			return nil, nil, notes, err
		}
		rps[alg] = r
	}
	rpClient := &http.Client{Transport: rpTransport, Timeout: 30 * time.Second}
	t.saml, err = newSAMLSP(idp.URL, keys, rpClient)
	if errors.Is(err, errNoSAML) {
		logf("the IdP has no SAML provider: the saml scenario is skipped")
		err = nil
	}
	if err != nil {
		return nil, nil, notes, err
	}

	begin := time.Now()
	if err := forEachUser(ctx, t.users, o.workers, func(ctx context.Context, u *vuser) error {
		ictx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return enroll(ictx, base, transport, sink, u)
	}); err != nil {
		return nil, nil, notes, fmt.Errorf("enrolling users: %w", err)
	}
	sleep(ctx, o.settle)
	seededRSS, _ := readMemory(idp.PID())
	logf("idp pid %d at %s (algorithms %s): RSS %s after start-up; enrolled %d users (address + trusted browser) in %s; RSS %s",
		idp.PID(), idp.URL, strings.Join(o.algs, ","), mb(startRSS.RSS), o.users, time.Since(begin).Round(100*time.Millisecond), mb(seededRSS.RSS))

	// The directory's own ceiling, with the IdP idle, in the same run.
	c, err := measureLDAPCeiling(ctx, ls, t.users, o.workers, o.warmup, o.duration)
	if err != nil {
		return nil, nil, notes, fmt.Errorf("directory ceiling: %w", err)
	}
	ceil = &c
	logf("directory ceiling: %.1f password checks/s (search + disabled check + bind, %d loops), slapd %s CPU each, errors %d",
		c.rate, o.workers, ms(c.slapdCPUPerCheck()), c.errors)

	for _, sc := range scenarios {
		if !o.wants(sc.name) || (sc.oidc && rps == nil) || (sc.saml && t.saml == nil) {
			continue
		}
		labels := []string{"-"}
		if sc.oidc {
			labels = o.algs
		}
		for _, label := range labels {
			t.rp = rps[label]
			st := t
			if sc.passwordOnly {
				pt := *t
				pt.users = t.pwUsers
				st = &pt
			}
			if sc.prepare != nil {
				if err := sc.prepare(ctx, st, o.workers); err != nil {
					return results, ceil, notes, fmt.Errorf("%s %s: preparing: %w", sc.name, label, err)
				}
			}
			sleep(ctx, o.settle) // let the previous load's garbage go
			r, err := measure(ctx, st, sc, label, idp, ls.PID(), measureOptions{
				workers: o.workers, warmup: o.warmup, duration: o.duration, profileDir: o.profileDir, pgPID: pgPID,
			})
			if err != nil {
				return results, ceil, notes, err
			}
			results = append(results, r)
			logf("%-14s %-5s %8.1f logins/s  p50 %s  p99 %s  errors %d  store: %.2f write tx, %.1f statements per login",
				sc.name, label, r.rate(), ms(r.p50), ms(r.p99), r.errors,
				r.perLogin(r.store.writeTx), r.perLogin(r.store.reads+r.store.writes))
			if r.storeErr != nil {
				logf("%s %s: store counters unavailable: %v", sc.name, label, r.storeErr)
			}
			if r.profile != "" && !strings.HasPrefix(r.profile, "(") {
				summarizeProfile(ctx, r.profile, logf)
			}
		}
	}
	return results, ceil, notes, nil
}

// summarizeProfile writes `go tool pprof -top` of a profile next to it.
func summarizeProfile(ctx context.Context, path string, logf func(string, ...any)) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", path).CombinedOutput()
	if err != nil {
		logf("pprof -top %s: %v", path, err)
		return
	}
	top := strings.TrimSuffix(path, ".cpu.pprof") + ".top.txt"
	if err := os.WriteFile(top, out, 0o644); err != nil {
		logf("%v", err)
		return
	}
	cum, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=60", path).CombinedOutput()
	if err == nil {
		_ = os.WriteFile(strings.TrimSuffix(path, ".cpu.pprof")+".cum.txt", cum, 0o644)
	}
	logf("profile: %s (top: %s)", path, filepath.Base(top))
}

func printTable(w io.Writer, o options, results []result, ceil *ceiling, notes []string) {
	fmt.Fprintf(w, "\n%d users, %d virtual browsers, %s per scenario after %s warm-up; store %s; %d CPUs (GOMAXPROCS), %s/%s\n\n",
		o.users, o.workers, o.duration, o.warmup, o.store, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	if ceil != nil {
		fmt.Fprintf(w, "directory ceiling (slapd alone, %d loops of search + disabled check + bind): %.1f/s, slapd %s CPU per check, slapd CPU s %.1f, bench CPU s %.1f, other CPU s %.1f, errors %d\n\n",
			o.workers, ceil.rate, ms(ceil.slapdCPUPerCheck()), ceil.slapdCPU.Seconds(), ceil.benchCPU.Seconds(), ceil.otherCPU.Seconds(), ceil.errors)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\talg\tlogins/s\tof ceiling\tp50\tp99\terrors\twrite tx/login\tstmts/login\twrites/login\tIdP CPU s\tIdP CPU %\tCPU/login\tpeak RSS\tidle RSS\tslapd CPU s\tpostgres CPU s\tbench CPU s\tother CPU s\t")
	for _, r := range results {
		share, tx, stmts, writes := "-", "-", "-", "-"
		if ceil != nil && ceil.rate > 0 {
			share = fmt.Sprintf("%.0f%%", 100*r.rate()/ceil.rate)
		}
		if r.storeErr == nil && r.logins > 0 {
			tx = fmt.Sprintf("%.2f", r.perLogin(r.store.writeTx))
			stmts = fmt.Sprintf("%.1f", r.perLogin(r.store.reads+r.store.writes))
			writes = fmt.Sprintf("%.1f", r.perLogin(r.store.writes))
		}
		pg := "-"
		if o.store == "postgres" {
			pg = fmt.Sprintf("%.1f", r.pgCPU.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.1f\t%.0f%%\t%s\t%s\t%s\t%.1f\t%s\t%.1f\t%.1f\t\n",
			r.scenario, r.alg, r.rate(), share, ms(r.p50), ms(r.p99), r.errors, tx, stmts, writes,
			r.idpCPU.Seconds(), 100*r.idpCPU.Seconds()/r.window.Seconds(), ms(r.cpuPerLogin()), mb(r.peakRSS), mb(r.idleRSS),
			r.slapdCPU.Seconds(), pg, r.benchCPU.Seconds(), r.otherCPU.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w, "\nof ceiling: the rate as a share of the directory ceiling above. write tx, stmts (reads + writes) and")
	fmt.Fprintln(w, "writes per login: the IdP's store counters (/metrics) over the window divided by its logins.")
	fmt.Fprintln(w, "IdP CPU % is of one core; CPU/login is the IdP's CPU time per login. Idle RSS is read just")
	fmt.Fprintf(w, "before the scenario, after a %s pause. postgres CPU s is the PostgreSQL server's (all its processes,\n", o.settle)
	fmt.Fprintln(w, "with -store postgres). other CPU s is what other processes on the machine used in the window.")
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	for _, r := range results {
		for _, e := range r.sampleErrors {
			fmt.Fprintf(w, "error in %s/%s: %s\n", r.scenario, r.alg, e)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func mb(b int64) string { return fmt.Sprintf("%.1fMB", float64(b)/(1<<20)) }
