package main

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/campusidp/campusidp/ldapstore"
)

// Directory is this program's own account directory: a fixed list of
// accounts in memory. It implements idp.Directory (Authenticate, Lookup);
// a real program would ask its HR database or another IdP here.
type Directory struct {
	accounts map[string]account
}

type account struct {
	password string
	user     ldapstore.User
}

// NewDirectory returns a directory with two demo users.
func NewDirectory() *Directory {
	return &Directory{accounts: map[string]account{
		"hanako": {password: "sakura-2026", user: ldapstore.User{ID: "hanako", DisplayName: "Hanako Yamada",
			DisplayNameJA: "山田 花子", Mail: "hanako@example.ac.jp", Groups: []string{"students"}}},
		"kenji": {password: "momiji-2026", user: ldapstore.User{ID: "kenji", DisplayName: "Kenji Sato",
			DisplayNameJA: "佐藤 健二", Mail: "kenji@example.ac.jp", Groups: []string{"staff"}}},
	}}
}

// Authenticate checks a password. Every failure is the one generic
// ldapstore.ErrInvalidCredentials, as the login core expects.
func (d *Directory) Authenticate(_ context.Context, id, password string) (*ldapstore.User, error) {
	a, ok := d.accounts[strings.ToLower(id)]
	if !ok || password == "" || subtle.ConstantTimeCompare([]byte(password), []byte(a.password)) != 1 {
		return nil, ldapstore.ErrInvalidCredentials
	}
	u := a.user
	return &u, nil
}

// Lookup reads an account without a password (token refresh, userinfo).
func (d *Directory) Lookup(_ context.Context, id string) (*ldapstore.User, error) {
	a, ok := d.accounts[strings.ToLower(id)]
	if !ok {
		return nil, ldapstore.ErrUserNotFound
	}
	u := a.user
	return &u, nil
}
