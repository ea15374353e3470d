package oidcprovider

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
)

// errNoSubject: the account lacks the attribute the subject is taken from.
var errNoSubject = errors.New("oidcprovider: the account has no value for the subject attribute")

// user is what claims are made of: the account as the directory described
// it at login (or at a later lookup).
type user struct {
	ID            string              `json:"id"`
	DisplayName   string              `json:"display_name,omitempty"`
	DisplayNameJA string              `json:"display_name_ja,omitempty"`
	Mail          string              `json:"mail,omitempty"`
	Groups        []string            `json:"groups,omitempty"`
	Attributes    map[string][]string `json:"attributes,omitempty"`
}

func userFromSession(u idp.SessionUser) *user {
	return &user{ID: u.ID, DisplayName: u.DisplayName, DisplayNameJA: u.DisplayNameJA, Mail: u.Mail,
		Groups: u.Groups, Attributes: u.Attributes}
}

func userFromDirectory(u *ldapstore.User) *user {
	return &user{ID: u.ID, DisplayName: u.DisplayName, DisplayNameJA: u.DisplayNameJA, Mail: u.Mail,
		Groups: u.Groups, Attributes: u.Attributes}
}

// attribute returns the values of a directory attribute; attribute names
// compare without regard to case.
func (u *user) attribute(name string) []string {
	for k, v := range u.Attributes {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// claimMapper turns an account into a subject and claims, per config.
type claimMapper struct {
	claims        []config.OIDCClaim
	emailVerified bool
	subjectAttr   string
	pairwiseKey   []byte
}

func newClaimMapper(cfg config.OIDC) *claimMapper {
	return &claimMapper{
		claims:        cfg.Claims,
		emailVerified: cfg.EmailVerified,
		subjectAttr:   cfg.SubjectAttribute,
		pairwiseKey:   []byte(cfg.PairwiseSalt.Value()),
	}
}

// subject is the "sub" the client sees for the account: the configured
// attribute (or the login ID), or for a pairwise client a keyed hash of it
// and the client's sector, so clients of different sectors cannot link
// their users.
func (m *claimMapper) subject(u *user, c *client) (string, error) {
	local := u.ID
	if m.subjectAttr != "" {
		vals := u.attribute(m.subjectAttr)
		if len(vals) == 0 || vals[0] == "" {
			return "", errNoSubject
		}
		local = vals[0]
	}
	if c.cfg.Subject() != config.OIDCSubjectPairwise {
		return local, nil
	}
	mac := hmac.New(sha256.New, m.pairwiseKey)
	mac.Write([]byte(c.sector))
	mac.Write([]byte{0})
	mac.Write([]byte(local))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// sectorOf is the pairwise sector of a client: its sector_identifier, or
// the host of its redirect URIs (config validation ensures they share one).
func sectorOf(c config.OIDCClient) string {
	if c.SectorIdentifier != "" {
		return strings.ToLower(c.SectorIdentifier)
	}
	for _, raw := range c.RedirectURIs {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
			return strings.ToLower(u.Hostname())
		}
	}
	return c.ID
}

// fill sets sub and the claims the scopes release on info.
func (m *claimMapper) fill(info *oidc.UserInfo, sub string, u *user, scopes []string) {
	info.Subject = sub
	for _, c := range m.claims {
		if !slices.Contains(scopes, c.Scope) {
			continue
		}
		vals := m.values(u, c)
		if len(vals) == 0 {
			continue
		}
		if c.Multi || c.Source == config.ClaimSourceGroups {
			info.AppendClaims(c.Name, vals)
		} else {
			info.AppendClaims(c.Name, vals[0])
		}
		if c.Source == config.ClaimSourceMail && c.Name == "email" && m.emailVerified {
			info.AppendClaims("email_verified", true)
		}
	}
}

func (m *claimMapper) values(u *user, c config.OIDCClaim) []string {
	var raw []string
	switch c.Source {
	case config.ClaimSourceID:
		raw = []string{u.ID}
	case config.ClaimSourceDisplayName:
		raw = []string{u.DisplayName}
	case config.ClaimSourceDisplayNameJA:
		raw = []string{u.DisplayNameJA}
	case config.ClaimSourceMail:
		raw = []string{u.Mail}
	case config.ClaimSourceGroups:
		raw = u.Groups
	default:
		if attr, ok := c.ClaimAttribute(); ok {
			raw = u.attribute(attr)
		}
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		if v != "" {
			out = append(out, v+c.Suffix)
		}
	}
	return out
}
