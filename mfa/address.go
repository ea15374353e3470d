package mfa

import (
	"fmt"
	"net/mail"
	"strings"

	"golang.org/x/net/idna"
)

const (
	maxAddressLen = 254 // RFC 5321 path limit less the brackets
	maxLocalLen   = 64
)

// NormalizeAddress checks a private e-mail address typed by a user and returns
// it with the domain lower-cased (and in ASCII for international domains).
// Display names, comments and lists are refused: the box takes one address.
func NormalizeAddress(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" || len(s) > maxAddressLen || strings.ContainsAny(s, "<>,;\"() \t\r\n") {
		return "", fmt.Errorf("%w: not a single plain address", ErrAddressInvalid)
	}
	parsed, err := mail.ParseAddress(s)
	if err != nil || parsed.Name != "" || parsed.Address != s {
		return "", fmt.Errorf("%w: syntax", ErrAddressInvalid)
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if local == "" || len(local) > maxLocalLen {
		return "", fmt.Errorf("%w: local part length", ErrAddressInvalid)
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || !strings.Contains(ascii, ".") || strings.HasSuffix(ascii, ".") {
		return "", fmt.Errorf("%w: domain", ErrAddressInvalid)
	}
	out := local + "@" + strings.ToLower(ascii)
	if len(out) > maxAddressLen {
		return "", fmt.Errorf("%w: too long", ErrAddressInvalid)
	}
	return out, nil
}

// Blocked reports whether a normalized address is in one of the blocked
// domains or their subdomains (domains are compared lower-case, in ASCII).
func Blocked(addr string, blockedDomains []string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	domain := strings.ToLower(addr[at+1:])
	for _, b := range blockedDomains {
		b = strings.ToLower(strings.Trim(strings.TrimSpace(b), "."))
		if ascii, err := idna.Lookup.ToASCII(b); err == nil {
			b = ascii
		}
		if b != "" && (domain == b || strings.HasSuffix(domain, "."+b)) {
			return true
		}
	}
	return false
}

// CheckAddress normalizes an address and refuses blocked domains.
func CheckAddress(raw string, blockedDomains []string) (string, error) {
	addr, err := NormalizeAddress(raw)
	if err != nil {
		return "", err
	}
	if Blocked(addr, blockedDomains) {
		return "", ErrAddressBlocked
	}
	return addr, nil
}

// MaskAddress shows enough of an address for its owner to recognise it:
// the first two characters of the local part, then stars, then the domain.
func MaskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "*****"
	}
	local := []rune(addr[:at])
	keep := 2
	if len(local) <= 2 {
		keep = 1
	}
	if len(local) < keep {
		keep = len(local)
	}
	stars := len(local) - keep
	if stars < 5 {
		stars = 5
	}
	return string(local[:keep]) + strings.Repeat("*", stars) + addr[at:]
}
