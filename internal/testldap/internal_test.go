package testldap

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // verifying the {SSHA} format
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fatalRecorder is a testing.TB whose Fatal ends only the calling goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartFailsLoudlyWithoutSlapd(t *testing.T) {
	saved := slapdPath
	slapdPath = "/nonexistent/slapd"
	defer func() { slapdPath = saved }()

	rec := &fatalRecorder{TB: t}
	done := make(chan *Server)
	go func() {
		defer close(done)
		done <- Start(rec)
	}()
	if s := <-done; s != nil {
		t.Fatal("Start returned a server although slapd is missing")
	}
	if !strings.Contains(rec.msg, "apt-get install slapd ldap-utils") {
		t.Fatalf("Fatal message %q does not say how to install slapd", rec.msg)
	}
}

func TestSSHA(t *testing.T) {
	for _, pw := range []string{"alice-password1", Taro.Password, "x"} {
		got, err := SSHA(pw)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(got, "{SSHA}"))
		if !strings.HasPrefix(got, "{SSHA}") || err != nil || len(raw) != sha1.Size+8 {
			t.Fatalf("SSHA(%q) = %q: not {SSHA} of a 20-byte digest and 8-byte salt", pw, got)
		}
		digest, salt := raw[:sha1.Size], raw[sha1.Size:]
		want := sha1.Sum(append([]byte(pw), salt...)) //nolint:gosec // format check
		if !bytes.Equal(digest, want[:]) {
			t.Fatalf("SSHA(%q): digest is not sha1(password+salt)", pw)
		}
	}
	a, _ := SSHA("same")
	b, _ := SSHA("same")
	if a == b {
		t.Fatal("two hashes of one password share a salt")
	}
}

func TestLDIFValueEncoding(t *testing.T) {
	tests := []struct {
		value string
		plain bool
	}{
		{"alice", true},
		{"", true},
		{"Taro Yamada", true},
		{"山田 太郎", false},
		{" leading space", false},
		{"trailing space ", false},
		{":colon first", false},
		{"<angle first", false},
		{"line\nbreak", false},
		{"nul\x00byte", false},
	}
	for _, tt := range tests {
		var b strings.Builder
		writeAttr(&b, "cn", tt.value)
		line := b.String()
		if tt.plain {
			if line != "cn: "+tt.value+"\n" {
				t.Errorf("%q written as %q, want plain", tt.value, line)
			}
			continue
		}
		enc, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "cn:: ")
		dec, err := base64.StdEncoding.DecodeString(enc)
		if !ok || err != nil || string(dec) != tt.value {
			t.Errorf("%q written as %q, want base64", tt.value, line)
		}
	}
}
