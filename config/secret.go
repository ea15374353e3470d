package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

const redacted = "[redacted]"

// maxSecretFileSize bounds what a {file: ...} secret may read, so a path
// pointing at a device or a huge file cannot stall or bloat startup.
const maxSecretFileSize = 64 << 10

type secretSource int

const (
	secretUnset secretSource = iota
	secretInline
	secretEnv
	secretFile
)

// Secret is a sensitive setting. In YAML it is either a plain string, or a
// mapping {env: NAME} naming an environment variable, or {file: PATH} naming
// a file whose content (without trailing newlines) is the value. The value is
// resolved when the Secret is decoded or constructed; a missing variable or
// unreadable file is kept and reported by Config.Validate with the key path.
//
// Every printing path (fmt verbs, slog, YAML, JSON, text marshalling) yields
// "[redacted]", so a Config can be logged or dumped without leaking.
type Secret struct {
	source secretSource
	ref    string // variable name or file path; never the value
	value  string
	err    error
}

// SecretValue returns a Secret holding v itself.
func SecretValue(v string) Secret {
	if v == "" {
		return Secret{}
	}
	return Secret{source: secretInline, value: v}
}

// SecretFromEnv returns a Secret read now from the environment variable name.
func SecretFromEnv(name string) Secret {
	s := Secret{source: secretEnv, ref: name}
	v, ok := os.LookupEnv(name)
	switch {
	case !ok:
		s.err = fmt.Errorf("environment variable %s is not set", name)
	case v == "":
		s.err = fmt.Errorf("environment variable %s is empty", name)
	default:
		s.value = v
	}
	return s
}

// SecretFromFile returns a Secret read now from the file at path, with
// trailing CR/LF removed. A relative path is relative to the working directory.
func SecretFromFile(path string) Secret {
	s := Secret{source: secretFile, ref: path}
	v, err := readSecretFile(path)
	switch {
	case err != nil:
		s.err = err
	case v == "":
		s.err = fmt.Errorf("file %s is empty", path)
	default:
		s.value = v
	}
	return s
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("cannot read secret file %s: %w", path, err)
	}
	if len(data) > maxSecretFileSize {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretFileSize)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// Value returns the secret itself ("" when unset or unresolvable).
func (s Secret) Value() string { return s.value }

// IsSet reports whether the secret has a usable, non-empty value.
func (s Secret) IsSet() bool { return s.value != "" }

// Err returns why an {env:} or {file:} secret could not be resolved, or nil.
func (s Secret) Err() error { return s.err }

// Source describes where the value comes from without revealing it:
// "env NAME", "file PATH", "inline" or "unset".
func (s Secret) Source() string {
	switch s.source {
	case secretEnv:
		return "env " + s.ref
	case secretFile:
		return "file " + s.ref
	case secretInline:
		return "inline"
	default:
		return "unset"
	}
}

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that no verb (%d, %x, %+v ...) can fall
// through to printing the struct fields.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return redacted, nil }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	parsed, err := secretFromNode(n)
	if err != nil {
		return err
	}
	*s = parsed.resolve()
	return nil
}

// secretFromNode reads the YAML shape of a Secret without resolving it, so
// the pre-decode check never reads a file (which might be a FIFO) twice.
// Shape errors (wrong node kind, unknown or conflicting keys) are returned.
func secretFromNode(n *yaml.Node) (Secret, error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return Secret{}, nil
		}
		return SecretValue(n.Value), nil
	case yaml.MappingNode:
		return secretFromMapping(n)
	default:
		return Secret{}, fmt.Errorf("line %d: a secret is a string, {env: NAME} or {file: PATH}", n.Line)
	}
}

func secretFromMapping(n *yaml.Node) (Secret, error) {
	var env, file *yaml.Node
	var problems []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		for val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		switch key.Value {
		case "env":
			env = val
		case "file":
			file = val
		default:
			problems = append(problems, fmt.Sprintf("line %d: unknown key %q in secret (only env or file)", key.Line, key.Value))
			continue
		}
		if val.Kind != yaml.ScalarNode || val.ShortTag() == "!!null" || strings.TrimSpace(val.Value) == "" {
			problems = append(problems, fmt.Sprintf("line %d: %s needs a non-empty name", key.Line, key.Value))
		}
	}
	if env != nil && file != nil {
		problems = append(problems, fmt.Sprintf("line %d: give either env or file, not both", n.Line))
	}
	if env == nil && file == nil && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("line %d: a secret mapping needs env or file", n.Line))
	}
	if len(problems) > 0 {
		return Secret{}, errors.New(strings.Join(problems, "; "))
	}
	if env != nil {
		return Secret{source: secretEnv, ref: strings.TrimSpace(env.Value)}, nil
	}
	return Secret{source: secretFile, ref: strings.TrimSpace(file.Value)}, nil
}

// resolve reads an env or file reference; resolution errors are kept in
// the Secret for Validate.
func (s Secret) resolve() Secret {
	switch s.source {
	case secretEnv:
		return SecretFromEnv(s.ref)
	case secretFile:
		return SecretFromFile(s.ref)
	default:
		return s
	}
}
