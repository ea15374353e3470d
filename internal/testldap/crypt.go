package testldap

import (
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"strings"
)

// CryptSHA512 returns password as a {CRYPT} userPassword value in the
// sha512-crypt scheme ($6$, Drepper's "Unix crypt using SHA-256 and
// SHA-512") with the given rounds, which slapd checks with the system's
// crypt(3). Campuses migrated from /etc/shadow or NIS keep such hashes;
// their cost is what makes an unchecked unknown ID fast.
func CryptSHA512(password string, rounds int) (string, error) {
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	salt := cryptB64(raw)[:16]
	return "{CRYPT}" + sha512Crypt([]byte(password), []byte(salt), rounds), nil
}

// sha512Crypt implements the $6$ scheme (5000 rounds unless given).
func sha512Crypt(pw, salt []byte, rounds int) string {
	rounds = min(max(rounds, 1000), 999999999)
	if len(salt) > 16 {
		salt = salt[:16]
	}
	b := sha512.New()
	b.Write(pw)
	b.Write(salt)
	b.Write(pw)
	sumB := b.Sum(nil)

	a := sha512.New()
	a.Write(pw)
	a.Write(salt)
	for n := len(pw); n > 0; n -= 64 {
		a.Write(sumB[:min(n, 64)])
	}
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(pw)
		}
	}
	sumA := a.Sum(nil)

	dp := sha512.New()
	for range len(pw) {
		dp.Write(pw)
	}
	sumDP := dp.Sum(nil)
	p := make([]byte, 0, len(pw))
	for n := len(pw); n > 0; n -= 64 {
		p = append(p, sumDP[:min(n, 64)]...)
	}

	ds := sha512.New()
	for range 16 + int(sumA[0]) {
		ds.Write(salt)
	}
	sumDS := ds.Sum(nil)
	s := make([]byte, 0, len(salt))
	for n := len(salt); n > 0; n -= 64 {
		s = append(s, sumDS[:min(n, 64)]...)
	}

	c := sumA
	for i := range rounds {
		h := sha512.New()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(nil)
	}

	// The digest's bytes are emitted in this fixed order, 3 at a time.
	order := [][3]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48},
		{28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13},
		{56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41}}
	var out strings.Builder
	for _, o := range order {
		out.WriteString(b64From24(c[o[0]], c[o[1]], c[o[2]], 4))
	}
	out.WriteString(b64From24(0, 0, c[63], 2))

	prefix := "$6$"
	if rounds != 5000 {
		prefix += fmt.Sprintf("rounds=%d$", rounds)
	}
	return prefix + string(salt) + "$" + out.String()
}

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func b64From24(b2, b1, b0 byte, n int) string {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	out := make([]byte, n)
	for i := range n {
		out[i] = cryptAlphabet[w&0x3f]
		w >>= 6
	}
	return string(out)
}

// cryptB64 encodes raw bytes in crypt's alphabet (for salts).
func cryptB64(raw []byte) string {
	var out strings.Builder
	for i := 0; i+2 < len(raw); i += 3 {
		out.WriteString(b64From24(raw[i], raw[i+1], raw[i+2], 4))
	}
	return out.String()
}
