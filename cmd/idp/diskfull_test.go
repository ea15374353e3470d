package main

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/internal/testsmtp"
)

// smallDisk mounts a small tmpfs for the test, or skips when it cannot
// (not root). CI runs as root.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs the tests as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes to path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}

// TestDiskFullIsNotReady: with SQLite on a disk that fills up, the next
// /readyz probe says not ready and a login is a 503 (not a 500); once space
// is freed the instance is ready again and logins work, without a restart.
func TestDiskFullIsNotReady(t *testing.T) {
	disk := smallDisk(t, "32m")
	ls, smtp := testldap.Start(t), testsmtp.Start(t)
	cfg := baseConfig(t, ls, smtp)
	cfg.Server.PublicURL = "http://127.0.0.1"
	cfg.Store.DSN = config.SecretValue(filepath.Join(disk, "idp.db"))
	if err := cfg.Validate(); err != nil {
		t.Fatal(config.Describe(err))
	}
	n := startNode(t, "solo", cfg)
	loginWorks := func(what string) {
		t.Helper()
		p := newBrowser(t, n.url).login(testldap.Alice)
		if p.Status != http.StatusOK || !(signedIn(p) || strings.Contains(p.Body, "One-Time Password Settings")) {
			t.Fatalf("login %s = %d:\n%s", what, p.Status, p.Body)
		}
	}
	loginWorks("before the disk fills")

	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	if code, body := httpGet(t, n.url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Fatalf("/readyz with the disk full = %d %q, want 503 naming the store", code, body)
	}
	b := newBrowser(t, n.url)
	if p := b.Follow(b.Get("/user/")); p.Status == http.StatusInternalServerError {
		t.Errorf("a login with the disk full = 500, want 503 or a working page:\n%s", p.Body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, n.url+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with space freed = %d %q, want 200", code, body)
	}
	loginWorks("after space was freed")
}
