package mfa

import (
	"errors"
	"testing"
)

func TestCheckSignCount(t *testing.T) {
	tests := []struct {
		name             string
		stored, reported uint32
		want             error
	}{
		{"no counter kept", 0, 0, nil},
		{"first use", 0, 1, nil},
		{"increased", 7, 8, nil},
		{"jumped", 7, 100, nil},
		{"replayed (equal)", 7, 7, ErrKeyCloned},
		{"went back (clone)", 7, 3, ErrKeyCloned},
		{"counter dropped to zero", 7, 0, ErrKeyCloned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckSignCount(tt.stored, tt.reported); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("CheckSignCount(%d, %d) = %v, want %v", tt.stored, tt.reported, err, tt.want)
			}
		})
	}
}

func TestKeyAMR(t *testing.T) {
	if KeyAMR(false) != "hwk" || KeyAMR(true) != "swk" {
		t.Fatalf("KeyAMR(false, true) = %q, %q; want hwk, swk", KeyAMR(false), KeyAMR(true))
	}
}

func TestAAGUIDAllowed(t *testing.T) {
	yubi := []byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8}
	other := make([]byte, 16)
	other[0] = 1
	zero := make([]byte, 16)
	allow := []string{"cb69481e-8ff7-4039-93ec-0a2729a154a8"}
	tests := []struct {
		name    string
		aaguid  []byte
		allowed []string
		want    bool
	}{
		{"no list: any model", other, nil, true},
		{"no list: no model", zero, nil, true},
		{"listed", yubi, allow, true},
		{"not listed", other, allow, false},
		{"no model with a list", zero, allow, false},
		{"missing with a list", nil, allow, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AAGUIDAllowed(tt.aaguid, tt.allowed); got != tt.want {
				t.Fatalf("AAGUIDAllowed = %v, want %v", got, tt.want)
			}
		})
	}
	if got := FormatAAGUID(yubi); got != allow[0] {
		t.Fatalf("FormatAAGUID = %q", got)
	}
}
