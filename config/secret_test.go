package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const secretCanary = "s3cr3t-canary-value-0123456789-abcdef"

func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	lfFile := writeFile("lf", secretCanary+"\n")
	crlfFile := writeFile("crlf", secretCanary+"\r\n\r\n")
	spaceFile := writeFile("space", " padded \n")
	emptyFile := writeFile("empty", "\n")
	hugeFile := writeFile("huge", strings.Repeat("x", maxSecretFileSize+1))
	t.Setenv("CONFIG_TEST_SECRET", secretCanary)
	t.Setenv("CONFIG_TEST_SECRET_EMPTY", "")

	tests := []struct {
		name       string
		yaml       string // value of security.secret_key
		wantValue  string
		wantSource string
		wantErr    string // Validate message for security.secret_key; "" = none
	}{
		{"plain", `"` + secretCanary + `"`, secretCanary, "inline", ""},
		{"env", `{env: CONFIG_TEST_SECRET}`, secretCanary, "env CONFIG_TEST_SECRET", ""},
		{"env block style", "\n    env: CONFIG_TEST_SECRET", secretCanary, "env CONFIG_TEST_SECRET", ""},
		{"file trailing LF", `{file: "` + lfFile + `"}`, secretCanary, "file " + lfFile, ""},
		{"file trailing CRLF", `{file: "` + crlfFile + `"}`, secretCanary, "file " + crlfFile, ""},
		{"file keeps inner spaces", `{file: "` + spaceFile + `"}`, " padded ", "file " + spaceFile, "at least 32 bytes"},
		{"env missing", `{env: CONFIG_TEST_SECRET_MISSING}`, "", "env CONFIG_TEST_SECRET_MISSING", "environment variable CONFIG_TEST_SECRET_MISSING is not set"},
		{"env empty", `{env: CONFIG_TEST_SECRET_EMPTY}`, "", "env CONFIG_TEST_SECRET_EMPTY", "environment variable CONFIG_TEST_SECRET_EMPTY is empty"},
		{"file missing", `{file: "` + filepath.Join(dir, "nope") + `"}`, "", "file " + filepath.Join(dir, "nope"), "no such file"},
		{"file empty", `{file: "` + emptyFile + `"}`, "", "file " + emptyFile, "is empty"},
		{"file too large", `{file: "` + hugeFile + `"}`, "", "file " + hugeFile, "larger than"},
		{"null", `~`, "", "unset", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(requiredYAML, `secret_key: "`+testSecretKey+`"`, "secret_key: "+tt.yaml, 1)
			cfg, err := Parse([]byte(doc))
			if got := cfg.Security.SecretKey.Value(); got != tt.wantValue {
				t.Errorf("Value() = %q, want %q", got, tt.wantValue)
			}
			if got := cfg.Security.SecretKey.IsSet(); got != (tt.wantValue != "") {
				t.Errorf("IsSet() = %v", got)
			}
			if got := cfg.Security.SecretKey.Source(); got != tt.wantSource {
				t.Errorf("Source() = %q, want %q", got, tt.wantSource)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			fe := findFieldError(t, err, "security.secret_key")
			if fe == nil {
				t.Fatalf("no error at security.secret_key; got %v", err)
			}
			if !strings.Contains(fe.Msg, tt.wantErr) {
				t.Errorf("message %q lacks %q", fe.Msg, tt.wantErr)
			}
			if len(fieldErrors(t, err)) != 1 {
				t.Errorf("want exactly one problem, got %v", err)
			}
		})
	}
}

func TestSecretConstructors(t *testing.T) {
	t.Setenv("CONFIG_TEST_CTOR", "from-env")
	path := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		secret  Secret
		want    string
		wantSet bool
		wantErr bool
	}{
		{"value", SecretValue("v"), "v", true, false},
		{"empty value is unset", SecretValue(""), "", false, false},
		{"zero", Secret{}, "", false, false},
		{"env", SecretFromEnv("CONFIG_TEST_CTOR"), "from-env", true, false},
		{"env missing", SecretFromEnv("CONFIG_TEST_CTOR_MISSING"), "", false, true},
		{"file", SecretFromFile(path), "from-file", true, false},
		{"file missing", SecretFromFile(path + ".missing"), "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.secret.Value() != tt.want || tt.secret.IsSet() != tt.wantSet || (tt.secret.Err() != nil) != tt.wantErr {
				t.Errorf("got value %q set %v err %v; want %q %v err=%v",
					tt.secret.Value(), tt.secret.IsSet(), tt.secret.Err(), tt.want, tt.wantSet, tt.wantErr)
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := SecretValue(secretCanary)
	cfg := validConfig()
	cfg.Security.SecretKey = s
	cfg.LDAP.BindPassword = s
	cfg.Mail.SMTP.Password = s
	cfg.Store.DSN = s

	render := map[string]func() string{
		"%v":              func() string { return fmt.Sprintf("%v", s) },
		"%+v":             func() string { return fmt.Sprintf("%+v", s) },
		"%#v":             func() string { return fmt.Sprintf("%#v", s) },
		"%s":              func() string { return fmt.Sprintf("%s", s) },
		"%q":              func() string { return fmt.Sprintf("%q", s) },
		"%x":              func() string { return fmt.Sprintf("%x", s) },
		"%d":              func() string { return fmt.Sprintf("%d", s) },
		"pointer %+v":     func() string { return fmt.Sprintf("%+v", &s) },
		"config %v":       func() string { return fmt.Sprintf("%v", cfg) },
		"config %+v":      func() string { return fmt.Sprintf("%+v", cfg) },
		"config %#v":      func() string { return fmt.Sprintf("%#v", cfg) },
		"config ptr %+v":  func() string { return fmt.Sprintf("%+v", &cfg) },
		"String":          s.String,
		"GoString":        s.GoString,
		"slog text":       func() string { return logWith(slog.NewTextHandler, "secret", s) },
		"slog json":       func() string { return logWith(slog.NewJSONHandler, "secret", s) },
		"slog text cfg":   func() string { return logWith(slog.NewTextHandler, "config", cfg) },
		"slog json cfg":   func() string { return logWith(slog.NewJSONHandler, "config", cfg) },
		"slog any ptr":    func() string { return logWith(slog.NewTextHandler, "secret", &s) },
		"json":            func() string { b, _ := json.Marshal(cfg); return string(b) },
		"yaml":            func() string { b, _ := yaml.Marshal(cfg); return string(b) },
		"yaml secret ptr": func() string { b, _ := yaml.Marshal(&s); return string(b) },
	}
	for name, fn := range render {
		t.Run(name, func(t *testing.T) {
			out := fn()
			if strings.Contains(out, secretCanary) || strings.Contains(out, fmt.Sprintf("%x", secretCanary)) {
				t.Fatalf("secret leaked: %s", out)
			}
			if !strings.Contains(out, redacted) {
				t.Errorf("output %q does not show %q", out, redacted)
			}
		})
	}
}

func logWith[H slog.Handler](newHandler func(w io.Writer, opts *slog.HandlerOptions) H, key string, v any) string {
	var buf bytes.Buffer
	slog.New(newHandler(&buf, nil)).Info("msg", key, v)
	return buf.String()
}

func TestSecretErrorNeverShowsValue(t *testing.T) {
	// A too-short key is reported by length, never by content.
	cfg := validConfig()
	cfg.Security.SecretKey = SecretValue("short-canary")
	err := cfg.Validate()
	if err == nil || strings.Contains(err.Error(), "short-canary") {
		t.Fatalf("Validate error = %v", err)
	}
	// A wrong PostgreSQL DSN is not echoed either.
	cfg = validConfig()
	cfg.Store.Driver = StorePostgres
	cfg.Store.DSN = SecretValue("pw-canary")
	err = cfg.Validate()
	if err == nil || strings.Contains(err.Error(), "pw-canary") {
		t.Fatalf("Validate error = %v", err)
	}
}
