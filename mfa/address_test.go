package mfa_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/campusidp/campusidp/mfa"
)

var blocked = []string{"st.kyoto-u.ac.jp", "kyoto-u.ac.jp", "ms.c.kyoto-u.ac.jp"}

func TestCheckAddress(t *testing.T) {
	cases := []struct {
		in, want string
		err      error
	}{
		{"taro@gmail.com", "taro@gmail.com", nil},
		{"  Taro.Y@Example.COM ", "Taro.Y@example.com", nil},
		{"user@例え.jp", "user@xn--r8jz45g.jp", nil},
		{"x@kyoto-u.ac.jp", "", mfa.ErrAddressBlocked},
		{"X@Sub.KYOTO-U.ac.jp", "", mfa.ErrAddressBlocked},
		{"a@st.kyoto-u.ac.jp", "", mfa.ErrAddressBlocked},
		{"a@ms.c.kyoto-u.ac.jp.", "", mfa.ErrAddressInvalid},
		{"a@notkyoto-u.ac.jp", "a@notkyoto-u.ac.jp", nil},
		{"Taro <taro@gmail.com>", "", mfa.ErrAddressInvalid},
		{"taro@gmail.com, evil@x.com", "", mfa.ErrAddressInvalid},
		{"no-at-sign", "", mfa.ErrAddressInvalid},
		{"a@localhost", "", mfa.ErrAddressInvalid},
		{strings.Repeat("a", 65) + "@gmail.com", "", mfa.ErrAddressInvalid},
		{"a@" + strings.Repeat("b", 250) + ".com", "", mfa.ErrAddressInvalid},
		{"", "", mfa.ErrAddressInvalid},
		{"taro@gmail.com\r\nBcc: x@y.z", "", mfa.ErrAddressInvalid},
	}
	for _, tc := range cases {
		got, err := mfa.CheckAddress(tc.in, blocked)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("CheckAddress(%q) error %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CheckAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestMaskAddress(t *testing.T) {
	for in, want := range map[string]string{
		"abcdefg@gmail.com":     "ab*****@gmail.com",
		"abcdefghijk@gmail.com": "ab*********@gmail.com",
		"ab@x.jp":               "a*****@x.jp",
		"a@x.jp":                "a*****@x.jp",
	} {
		if got := mfa.MaskAddress(in); got != want {
			t.Errorf("MaskAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
