// Package testldap runs a private OpenLDAP slapd for tests: a real server
// on a free loopback port, with the campus fixture loaded and stopped by
// t.Cleanup. It needs the Debian packages slapd and ldap-utils.
package testldap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/campusidp/campusidp/ldapstore"
)

// Debian's locations; variables only so a test can prove the missing-slapd message.
var (
	slapdPath      = "/usr/sbin/slapd"
	slapaddPath    = "/usr/sbin/slapadd"
	ldapmodifyPath = "/usr/bin/ldapmodify"
)

const (
	modulePath = "/usr/lib/ldap"
	schemaDir  = "/etc/ldap/schema"

	installHint = "install OpenLDAP for the tests: apt-get install slapd ldap-utils"

	readyTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
	// slapd log level "stats": connections, operations and the filters
	// they carry, which lets tests see what reached the server.
	logLevel = "256"
)

// Server is a running private slapd.
type Server struct {
	// URL is ldap://127.0.0.1:PORT.
	URL string
	// LDAPSURL (ldaps://127.0.0.1:PORT) and CAFile (PEM root of the
	// server certificate) are set when started WithTLS. The ldap:// URL
	// then also accepts StartTLS.
	LDAPSURL string
	CAFile   string

	dir     string
	ownDir  bool // made by StartServer; Close removes it
	opts    options
	port    int
	tlsPort int

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// Option changes how Start and StartServer set the server up.
type Option func(*options)

type options struct {
	tls         bool
	users       int
	pwUsers     int
	quiet       bool
	cryptRounds int
	noMemberOf  bool
}

// WithCryptPasswords stores every account's password as a {CRYPT}
// sha512-crypt hash of the given rounds (slow on purpose, as hashes
// migrated from Unix systems are) instead of {SSHA}, and adds the timing
// decoy entry DecoyDN with a password of the same scheme nobody knows.
func WithCryptPasswords(rounds int) Option { return func(o *options) { o.cryptRounds = rounds } }

// WithTLS also serves ldaps:// and StartTLS with a certificate from a
// throw-away CA (see Server.CAFile).
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithUsers adds n generated accounts, GeneratedUser(0) to
// GeneratedUser(n-1), to the fixture.
func WithUsers(n int) Option { return func(o *options) { o.users = n } }

// WithPasswordOnlyUsers adds n generated accounts more,
// PasswordOnlyUser(0) to PasswordOnlyUser(n-1) (pw00000...).
func WithPasswordOnlyUsers(n int) Option { return func(o *options) { o.pwUsers = n } }

// WithoutMemberOf leaves the memberof overlay out, as in a stock OpenLDAP:
// entries then carry no memberOf attribute.
func WithoutMemberOf() Option { return func(o *options) { o.noMemberOf = true } }

// WithQuietLog turns slapd's per-operation log off: under load, writing
// the stats log costs slapd a large share of its CPU. Log then shows only
// start-up problems.
func WithQuietLog() Option { return func(o *options) { o.quiet = true } }

// Start starts a private slapd in t.TempDir() on a free 127.0.0.1 port,
// loads the fixture and stops the server when the test ends. A missing
// slapd fails the test: tests that silently skip prove nothing.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{dir: t.TempDir()}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("testldap: slapd log (%s):\n%s", s.logPath(), s.Log())
		}
	})
	if err := s.setUp(opts); err != nil {
		t.Fatalf("testldap: %v", err)
	}
	return s
}

// StartServer is Start for programs that are not tests (the benchmark): the
// server lives in a new temporary directory until Close.
func StartServer(opts ...Option) (*Server, error) {
	dir, err := os.MkdirTemp("", "testldap-")
	if err != nil {
		return nil, fmt.Errorf("testldap: %w", err)
	}
	s := &Server{dir: dir, ownDir: true}
	if err := s.setUp(opts); err != nil {
		err = fmt.Errorf("testldap: %w", err)
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return s, nil
}

// Close stops slapd and, for a server from StartServer, removes its
// directory.
func (s *Server) Close() error {
	s.Stop()
	if s.ownDir {
		return os.RemoveAll(s.dir)
	}
	return nil
}

// PID is the process ID of the running slapd, 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// setUp creates the configuration and data in s.dir, starts slapd and
// loads the fixture.
func (s *Server) setUp(opts []Option) error {
	for _, opt := range opts {
		opt(&s.opts)
	}
	o := s.opts
	for _, bin := range []string{slapdPath, slapaddPath, ldapmodifyPath} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s not found (%v); %s", bin, err, installHint)
		}
	}
	for _, sub := range []string{"data", "slapd.d"} {
		if err := os.Mkdir(filepath.Join(s.dir, sub), 0o700); err != nil {
			return err
		}
	}
	if o.tls {
		ca, err := writeCertificates(s.dir)
		if err != nil {
			return fmt.Errorf("creating certificates: %w", err)
		}
		s.CAFile = ca
	}
	if err := os.WriteFile(s.passwordFile(), []byte(rootPassword), 0o600); err != nil {
		return err
	}
	configPath := filepath.Join(s.dir, "config.ldif")
	if err := os.WriteFile(configPath, []byte(configLDIF(s.dir, o.tls, !o.noMemberOf)), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(slapaddPath, "-n0", "-F", filepath.Join(s.dir, "slapd.d"), "-l", configPath).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd of cn=config failed: %v\n%s", err, out)
	}

	// A port found free may be taken by someone else before slapd binds
	// it; pick another and try again.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		var err error
		if s.port, err = freePort(); err != nil {
			return err
		}
		if o.tls {
			if s.tlsPort, err = freePort(); err != nil {
				return err
			}
		}
		lastErr = s.start()
		if lastErr == nil || !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	if lastErr != nil {
		return fmt.Errorf("%v\nslapd log:\n%s", lastErr, s.Log())
	}
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(s.port)
	if o.tls {
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(s.tlsPort)
	}

	fixture, err := fixtureLDIF(o.users, o.pwUsers, o.cryptRounds)
	if err != nil {
		return fmt.Errorf("building fixture: %w", err)
	}
	// Loaded online, not with slapadd, so the memberof overlay sees the
	// group adds and fills in memberOf.
	return s.ldapmodify(fixture, "-a")
}

var errAddrInUse = errors.New("address already in use")

// start launches slapd on the server's ports and waits until it accepts
// connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// Earlier runs share the log file; only this run's lines explain its failure.
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		logFile.Close()
		return err
	}
	listen := "ldap://127.0.0.1:" + strconv.Itoa(s.port) + "/"
	if s.tlsPort != 0 {
		listen += " ldaps://127.0.0.1:" + strconv.Itoa(s.tlsPort) + "/"
	}
	// -d keeps slapd in the foreground with its log on stderr.
	level := logLevel
	if s.opts.quiet {
		level = "0"
	}
	cmd := exec.Command(slapdPath, "-d", level, "-F", filepath.Join(s.dir, "slapd.d"), "-h", listen)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting slapd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			logFile.Close()
			if strings.Contains(s.logSince(logStart), "errno=98") {
				return fmt.Errorf("slapd on %s: %w", addr, errAddrInUse)
			}
			return fmt.Errorf("slapd exited during start-up (%v)", cmd.ProcessState)
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			s.cmd, s.exited, s.logFile = cmd, exited, logFile
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			logFile.Close()
			return fmt.Errorf("slapd did not accept connections on %s within %s: %v", addr, readyTimeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop stops slapd (SIGTERM, then SIGKILL if it hangs) and waits for it to
// exit. The data stays, for Restart. Stopping a stopped server is a no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.logFile.Close()
	s.cmd, s.exited, s.logFile = nil, nil, nil
}

// Restart starts the stopped server again on the same port with the same
// data (it stops it first if needed).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// The kernel may hold the port briefly; slapd sets SO_REUSEADDR, so
	// this only matters if another process grabbed it meanwhile.
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err = s.start(); err == nil || !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testldap: restart: %v\nslapd log:\n%s", err, s.Log())
	}
}

// Modify applies an LDIF change (changetype records, as for ldapmodify)
// as the root DN, e.g. to disable a user during a test.
func (s *Server) Modify(t testing.TB, ldif string) {
	t.Helper()
	s.apply(t, ldif)
}

func (s *Server) apply(t testing.TB, ldif string, extraArgs ...string) {
	t.Helper()
	if err := s.ldapmodify(ldif, extraArgs...); err != nil {
		t.Fatalf("testldap: %v", err)
	}
}

func (s *Server) ldapmodify(ldif string, extraArgs ...string) error {
	args := append([]string{"-x", "-H", s.URL, "-D", rootDN, "-y", s.passwordFile()}, extraArgs...)
	cmd := exec.Command(ldapmodifyPath, args...)
	cmd.Stdin = strings.NewReader(ldif)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ldapmodify failed: %v\n%s", err, out.String())
	}
	return nil
}

// Config returns an ldapstore.Config for this server: the service
// account, the fixture's filters and attributes, groups via memberOf.
func (s *Server) Config() ldapstore.Config {
	return ldapstore.Config{
		URLs:           []string{s.URL},
		BindDN:         ServiceDN,
		BindPassword:   ServicePassword,
		UserBaseDN:     PeopleDN,
		UserFilter:     "(&(objectClass=inetOrgPerson)(uid={id}))",
		DisabledFilter: "(employeeType=disabled)",
		Attributes: ldapstore.Attributes{
			ID:            "uid",
			DisplayName:   "displayName",
			DisplayNameJA: "displayName;lang-ja",
			Mail:          "mail",
			Extra:         []string{"employeeType"},
		},
		Groups: ldapstore.Groups{
			Mode:      ldapstore.GroupsMemberOf,
			Attribute: "memberOf",
		},
		PoolSize:         4,
		DialTimeout:      2 * time.Second,
		OperationTimeout: 2 * time.Second,
		IdleTimeout:      time.Minute,
	}
}

// Log returns slapd's log so far (connections, operations, filters).
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// logSince returns the log from byte offset on.
func (s *Server) logSince(offset int64) string {
	log := s.Log()
	if offset > int64(len(log)) {
		return ""
	}
	return log[offset:]
}

func (s *Server) logPath() string      { return filepath.Join(s.dir, "slapd.log") }
func (s *Server) passwordFile() string { return filepath.Join(s.dir, "rootpw") }

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// configLDIF is the cn=config tree: mdb with the memberof overlay, the
// usual schemas, and ACLs that let the service account read, let users
// bind and give anonymous clients nothing but authentication.
func configLDIF(dir string, withTLS, withMemberOf bool) string {
	tlsAttrs := ""
	if withTLS {
		tlsAttrs = "olcTLSCACertificateFile: " + filepath.Join(dir, "ca.pem") + "\n" +
			"olcTLSCertificateFile: " + filepath.Join(dir, "server.pem") + "\n" +
			"olcTLSCertificateKeyFile: " + filepath.Join(dir, "server-key.pem") + "\n"
	}
	var schemas strings.Builder
	for _, name := range []string{"core", "cosine", "nis", "inetorgperson"} {
		fmt.Fprintf(&schemas, "include: file://%s/%s.ldif\n\n", schemaDir, name)
	}
	return `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ` + filepath.Join(dir, "slapd.pid") + `
` + tlsAttrs + `
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: ` + modulePath + `
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

` + schemas.String() + `dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to dn.base="" by users read by * none
olcAccess: {1}to dn.base="cn=Subschema" by users read by * none

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ` + BaseDN + `
olcRootDN: ` + rootDN + `
olcRootPW: ` + rootPassword + `
olcDbDirectory: ` + filepath.Join(dir, "data") + `
olcDbMaxSize: 16777216
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: member eq
olcAccess: {0}to attrs=userPassword by anonymous auth by * none
olcAccess: {1}to * by dn.exact="` + ServiceDN + `" read by * none
` + memberOfLDIF(withMemberOf)
}

func memberOfLDIF(with bool) string {
	if !with {
		return ""
	}
	return `
dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
`
}
