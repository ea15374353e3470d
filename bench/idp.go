package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// Settings of the IdP under test that the virtual browsers must know.
const (
	clientSecret   = "bench-client-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	redirectURI    = "http://127.0.0.1:9/callback" // never contacted: the bench reads the code from the URL
	secretKey      = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
	mailFrom       = "ninsho-bench@campus.example"
	otpAddressHost = "bench-mail.example" // private OTP addresses: user00042@bench-mail.example
)

// benchClientID is the relying party whose ID tokens are signed with alg:
// the IdP registers one per algorithm of -algs (bench-rs256, bench-es256).
func benchClientID(alg string) string { return "bench-" + strings.ToLower(alg) }

// buildIdP compiles ./cmd/idp into dir and returns the binary's path.
func buildIdP(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "idp")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/campusidp/campusidp/cmd/idp")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/idp: %v\n%s", err, out)
	}
	return bin, nil
}

// idpOptions is what differs between the IdP processes of one run.
type idpOptions struct {
	binary   string
	algs     []string // a relying party signed with each; the first is keys.algorithm
	logLevel string
	profile  bool // open the pprof listener
	saml     *samlKeys
	pgDSN    string // store.driver postgres with this DSN; "" for SQLite in the IdP's directory
}

// idpProcess is a running `idp serve`.
type idpProcess struct {
	URL       string // http://127.0.0.1:PORT, also the public URL and OIDC issuer
	PprofURL  string // http://127.0.0.1:PORT/debug/pprof, "" unless profiling
	dir       string
	logPath   string
	cmd       *exec.Cmd
	exited    chan struct{}
	exitState error
}

func (p *idpProcess) PID() int { return p.cmd.Process.Pid }

// startIdP writes a config (and, without a PostgreSQL DSN, a fresh SQLite
// file) in a new directory
// and starts `idp serve` on a free loopback port.
func startIdP(ctx context.Context, o idpOptions, ls *testldap.Server, ms *testsmtp.Server) (*idpProcess, error) {
	dir, err := os.MkdirTemp("", "idp-bench-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a port found free may be taken before the IdP binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p := &idpProcess{URL: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, logPath: filepath.Join(dir, "idp.log")}
		env := os.Environ()
		if o.profile {
			pport, err := freePort()
			if err != nil {
				return nil, err
			}
			addr := "127.0.0.1:" + strconv.Itoa(pport)
			p.PprofURL = "http://" + addr + "/debug/pprof"
			env = append(env, "IDP_PPROF_LISTEN="+addr)
		}
		cfg := idpConfig(o, port, dir, ls, ms)
		if o.saml != nil {
			section, err := samlConfig(o.saml, dir)
			if err != nil {
				return nil, err
			}
			cfg += section
		}
		cfgPath := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		if lastErr = p.start(ctx, o.binary, cfgPath, env); lastErr == nil {
			return p, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func (p *idpProcess) start(ctx context.Context, binary, cfgPath string, env []string) error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(binary, "serve", "-config", cfgPath)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() {
		p.exitState = cmd.Wait()
		close(p.exited)
	}()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("idp serve exited during start-up (%v):\n%s", p.exitState, p.LogTail(30))
		case <-ctx.Done():
			p.Stop()
			return ctx.Err()
		default:
		}
		resp, err := client.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("idp serve did not answer /healthz within 30s:\n%s", p.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the IdP (SIGTERM, then SIGKILL) and waits for it.
func (p *idpProcess) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(25 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Close stops the IdP and removes its directory.
func (p *idpProcess) Close() error {
	p.Stop()
	return os.RemoveAll(p.dir)
}

// LogTail returns the last n lines of the IdP's log.
func (p *idpProcess) LogTail(n int) string {
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fetchProfile saves a pprof profile of the running IdP to path.
func (p *idpProcess) fetchProfile(ctx context.Context, kind string, seconds int, path string) error {
	if p.PprofURL == "" {
		return errors.New("profiling is off")
	}
	u := p.PprofURL + "/" + kind
	if seconds > 0 {
		u += "?seconds=" + strconv.Itoa(seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// idpConfig is the YAML config of the IdP under test: production defaults
// except where a benchmark on one machine needs otherwise (each change is
// explained in bench/README.md).
func idpConfig(o idpOptions, port int, dir string, ls *testldap.Server, ms *testsmtp.Server) string {
	q := strconv.Quote
	lc := ls.Config()
	storeDriver, storeDSN := "sqlite", filepath.Join(dir, "idp.db")
	if o.pgDSN != "" {
		storeDriver, storeDSN = "postgres", o.pgDSN
	}
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  listen: %s
  public_url: %s
  # Every virtual browser comes from 127.0.0.1; it tells its own address in
  # X-Forwarded-For, as a campus load balancer would.
  trusted_proxies: ["127.0.0.1/32"]
ldap:
  urls: [%s]
  bind_dn: %s
  bind_password: %s
  user_base_dn: %s
  user_filter: %s
  disabled_filter: %s
  attributes:
    extra: [employeeType]
store:
  driver: %s
  dsn: %s
security:
  secret_key: %s
  password_budget:
    # One address per virtual user, each logging in far more often than a
    # person would: the per-address limit must not stop the run.
    per_ip:
      limit: 1000000
      window: 15m
mail:
  from: %s
  transport: smtp
  smtp:
    host: %s
    port: %d
    tls: none
    timeout: 10s
mfa:
  # Optional, so that the pw... users, who never enroll, log in with the
  # password alone (oidc-password); every user... account is enrolled
  # and so still needs its second factor at every login.
  enrollment: optional
  email:
    sends_per_hour: 100
log:
  level: %s
  format: json
oidc:
  keys:
    algorithm: %s
  # Every token request comes from one address (the bench's relying
  # parties), up to -c at once, and each spends from both budgets before
  # its secret is checked: the default 20 per address is below the number
  # in flight under load.
  client_auth_budget:
    per_client:
      limit: 1000000
      window: 15m
    per_ip:
      limit: 1000000
      window: 15m
  clients:
`,
		q("127.0.0.1:"+strconv.Itoa(port)), q("http://127.0.0.1:"+strconv.Itoa(port)),
		q(ls.URL), q(lc.BindDN), q(lc.BindPassword), q(lc.UserBaseDN), q(lc.UserFilter), q(lc.DisabledFilter),
		storeDriver, q(storeDSN), q(secretKey),
		q(mailFrom), q(ms.Host()), ms.Port(),
		q(o.logLevel), q(o.algs[0]))
	// One relying party per algorithm, the same in all else: the OIDC
	// scenarios of different algorithms run against one IdP.
	for _, alg := range o.algs {
		fmt.Fprintf(&b, `    - id: %s
      name: %s
      secret_hash: %s
      redirect_uris: [%s]
      scopes: [openid, profile, email, groups, offline_access]
      id_token_signed_response_alg: %s
`, q(benchClientID(alg)), q("Benchmark RP "+alg), q(clientSecretHash()), q(redirectURI), q(alg))
	}
	return b.String()
}

// clientSecretHash is the bcrypt hash of the client secret, registered as
// production configs do (secret_hash, not the secret itself).
var clientSecretHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(clientSecret), 10)
	if err != nil {
		panic(err) // only for a cost out of range
	}
	return string(h)
})

// samlConfig is the saml section: the IdP's signing key from files and the
// bench's SP registered from a metadata file.
func samlConfig(k *samlKeys, dir string) (string, error) {
	keyFile, certFile, err := k.idp.write(dir, "saml-signing")
	if err != nil {
		return "", err
	}
	mdFile := filepath.Join(dir, "sp-metadata.xml")
	if err := os.WriteFile(mdFile, []byte(k.spMetadata()), 0o600); err != nil {
		return "", err
	}
	q := strconv.Quote
	return fmt.Sprintf(`saml:
  enabled: true
  scope: "campus.example"
  signing:
    key_file: %s
    cert_file: %s
  service_providers:
    - entity_id: %s
      name: "Benchmark SP"
      metadata_file: %s
      attributes: [mail]
`, q(keyFile), q(certFile), q(spEntityID), q(mdFile)), nil
}
