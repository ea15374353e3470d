package testpg

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Private is a PostgreSQL server of the test's own (initdb in a temporary
// directory), for tests that stop and restart the server: the shared server
// at 127.0.0.1:5432 is never stopped. The server runs as the postgres user
// when the test runs as root (PostgreSQL refuses to run as root).
type Private struct {
	dir  string
	bin  string
	port int
	cred *syscall.Credential
}

// StartPrivate creates and starts a private server; it is stopped and
// removed when t ends. It skips the test when PostgreSQL's programs are not
// installed (fails under CI=true).
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	bin := serverBinDir()
	if bin == "" {
		unavailable(t, fmt.Errorf("initdb not found under /usr/lib/postgresql/*/bin"))
	}
	p := &Private{bin: bin}
	dir, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, fmt.Errorf("running as root without a postgres user: %v", err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if out, err := p.run("initdb", "-D", p.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("testpg: initdb: %v\n%s", err, out)
	}
	p.Start(t)
	t.Cleanup(func() { _, _ = p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop") })
	return p
}

func serverBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

func (p *Private) data() string { return filepath.Join(p.dir, "data") }

func (p *Private) run(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, prog), args...)
	cmd.Dir = p.dir
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd.CombinedOutput()
}

// DSN is the server's postgres database, as the postgres user.
func (p *Private) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=3", p.port)
}

// Start starts the (stopped) server and waits until it accepts connections.
func (p *Private) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", p.port, p.dir)
	if out, err := p.run("pg_ctl", "-D", p.data(), "-o", opts, "-l", filepath.Join(p.dir, "log"), "-w", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		t.Fatalf("testpg: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server as an operator's fast shutdown does: connections
// are cut and clients get errors until Start.
func (p *Private) Stop(t testing.TB) {
	t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data(), "-m", "fast", "-w", "stop"); err != nil {
		t.Fatalf("testpg: pg_ctl stop: %v\n%s", err, out)
	}
}

// Exec runs one statement as the superuser (e.g. ALTER SYSTEM).
func (p *Private) Exec(t testing.TB, query string) {
	t.Helper()
	db, err := sql.Open("pgx", p.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query); err != nil {
		t.Fatalf("testpg: %s: %v", query, err)
	}
}
