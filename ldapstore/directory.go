package ldapstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// User is a directory account as the IdP sees it.
type User struct {
	ID            string // the ID attribute as stored (canonical spelling)
	DN            string
	DisplayName   string
	DisplayNameJA string
	Mail          string
	Groups        []string // group names, sorted
	Disabled      bool
	// Attributes holds every fetched attribute (mapped and Extra), keyed by
	// the name used in Config.Attributes.
	Attributes map[string][]string
}

// PoolStats counts the connections of both pools (service and bind).
type PoolStats struct {
	Open         int    // connections currently open
	Idle         int    // open and waiting in a pool
	InUse        int    // open and serving an operation
	Dials        uint64 // connection attempts since New
	DialFailures uint64 // failed connection attempts since New
}

// Directory is a pooled LDAP client. It is safe for concurrent use.
type Directory struct {
	cfg       *settings
	log       *slog.Logger
	service   *pool // searches as the service account
	binds     *pool // user binds only
	userAttrs []string
	// timingDN receives the bind for an unknown or ambiguous ID, so that
	// answer costs the same round trips as a wrong password.
	timingDN string
}

// New validates cfg and returns a Directory. It does not connect: the
// first operation does, so the IdP can start while the directory is down.
func New(cfg Config, logger *slog.Logger) (*Directory, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	if s.InsecureSkipVerify {
		logger.Warn("ldap TLS certificate verification is disabled (InsecureSkipVerify)")
	}
	servers := newFailover(s.servers)
	timingDN := "cn=nonexistent-timing," + s.UserBaseDN
	if s.TimingDecoyDN != "" {
		timingDN = s.TimingDecoyDN
	}
	return &Directory{
		cfg:       s,
		log:       logger,
		service:   newPool("service", s, servers, true, logger),
		binds:     newPool("bind", s, servers, false, logger),
		userAttrs: s.allUserAttributes(),
		timingDN:  timingDN,
	}, nil
}

// errors internal to the search step; callers turn them into outcomes.
var (
	errNoSuchUser = errors.New("no entry matches")
	errAmbiguous  = errors.New("more than one entry matches")
)

// Authenticate checks id and password. It returns the user on success,
// ErrInvalidCredentials (see FailureReason) when the credentials are not
// accepted, and ErrDirectoryUnavailable when the directory cannot answer.
// The password is sent exactly as given.
func (d *Directory) Authenticate(ctx context.Context, id, password string) (*User, error) {
	// Refused before any traffic: nothing malformed reaches the directory.
	if !validID(id) {
		return nil, invalidCredentials(ReasonInvalidID)
	}
	if password == "" {
		// An empty simple bind would be an anonymous bind that "succeeds".
		return nil, invalidCredentials(ReasonEmptyPassword)
	}

	entry, err := d.findUser(ctx, id)
	reason := ""
	bindDN := d.timingDN
	switch {
	case err == nil:
		bindDN = entry.DN
	case errors.Is(err, errNoSuchUser):
		reason = ReasonUnknownID
	case errors.Is(err, errAmbiguous):
		reason = ReasonAmbiguousID
		d.log.WarnContext(ctx, "ldap user filter matches more than one entry; refusing login", "id", id)
	default:
		return nil, err
	}

	// Unknown IDs go through the same disabled check and bind as known
	// ones, against the timing decoy (or a DN that cannot exist), so time
	// does not tell them apart.
	disabled, err := d.isDisabled(ctx, bindDN)
	if err != nil {
		return nil, err
	}
	if disabled && reason == "" {
		reason = ReasonDisabled
	}
	bindReason, err := d.verifyPassword(ctx, bindDN, password)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = bindReason
	}
	if reason != "" {
		return nil, invalidCredentials(reason)
	}
	return d.userFromEntry(ctx, id, entry, false)
}

// Lookup reads a user live from the directory, without a password. A
// disabled account is returned with Disabled set. It returns
// ErrUserNotFound when no single entry matches.
func (d *Directory) Lookup(ctx context.Context, id string) (*User, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: malformed ID", ErrUserNotFound)
	}
	entry, err := d.findUser(ctx, id)
	switch {
	case errors.Is(err, errNoSuchUser):
		return nil, ErrUserNotFound
	case errors.Is(err, errAmbiguous):
		d.log.WarnContext(ctx, "ldap user filter matches more than one entry", "id", id)
		return nil, fmt.Errorf("%w: %w", ErrUserNotFound, err)
	case err != nil:
		return nil, err
	}
	disabled, err := d.isDisabled(ctx, entry.DN)
	if err != nil {
		return nil, err
	}
	return d.userFromEntry(ctx, id, entry, disabled)
}

// Ping reports whether a pooled service connection can read the user base,
// which proves the network, TLS, service account and base DN at once.
func (d *Directory) Ping(ctx context.Context) error {
	req := ldap.NewSearchRequest(d.cfg.UserBaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, d.timeLimit(), false, "(objectClass=*)", []string{"1.1"}, nil)
	err := d.service.do(ctx, func(c *ldap.Conn) error {
		_, err := c.Search(req)
		return err
	})
	if err != nil && !errors.Is(err, ErrDirectoryUnavailable) {
		return unavailable(fmt.Errorf("reading %s: %w", d.cfg.UserBaseDN, err))
	}
	return err
}

// Stats returns connection counters summed over both pools.
func (d *Directory) Stats() PoolStats {
	s, b := d.service.stats(), d.binds.stats()
	return PoolStats{
		Open:         s.Open + b.Open,
		Idle:         s.Idle + b.Idle,
		InUse:        s.InUse + b.InUse,
		Dials:        s.Dials + b.Dials,
		DialFailures: s.DialFailures + b.DialFailures,
	}
}

// Close closes idle connections and makes later calls fail with
// ErrDirectoryUnavailable. Connections in use close when their call ends.
func (d *Directory) Close() error {
	d.service.close()
	d.binds.close()
	return nil
}

// findUser searches the single entry matching id as the service account.
func (d *Directory) findUser(ctx context.Context, id string) (*ldap.Entry, error) {
	// A size limit of 2 is enough to see ambiguity without reading a
	// whole directory when a filter is too broad.
	req := ldap.NewSearchRequest(d.cfg.UserBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, d.timeLimit(), false, userFilter(d.cfg.UserFilter, id), d.userAttrs, nil)
	res, err := d.search(ctx, req)
	switch {
	case err == nil:
	case hasCode(err, ldap.LDAPResultSizeLimitExceeded):
		return nil, errAmbiguous
	case errors.Is(err, ErrDirectoryUnavailable):
		return nil, err
	default:
		// noSuchObject for the base, insufficient access, a filter the
		// server rejects: the configuration is broken, nobody can log in.
		d.log.ErrorContext(ctx, "ldap user search failed", "base", d.cfg.UserBaseDN, "error", err)
		return nil, unavailable(fmt.Errorf("user search: %w", err))
	}
	switch len(res.Entries) {
	case 0:
		return nil, errNoSuchUser
	case 1:
		return res.Entries[0], nil
	default:
		return nil, errAmbiguous
	}
}

// isDisabled reports whether the entry at dn matches DisabledFilter. An
// entry that does not exist (the timing DN) is simply not disabled.
func (d *Directory) isDisabled(ctx context.Context, dn string) (bool, error) {
	if d.cfg.DisabledFilter == "" {
		return false, nil
	}
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, d.timeLimit(), false, d.cfg.DisabledFilter, []string{"1.1"}, nil)
	res, err := d.search(ctx, req)
	switch {
	case err == nil:
		return len(res.Entries) > 0, nil
	case hasCode(err, ldap.LDAPResultNoSuchObject):
		return false, nil
	case errors.Is(err, ErrDirectoryUnavailable):
		return false, err
	default:
		return false, unavailable(fmt.Errorf("disabled check: %w", err))
	}
}

// verifyPassword binds as dn on a bind-pool connection. It returns a
// failure reason ("" on success) or an outage error.
func (d *Directory) verifyPassword(ctx context.Context, dn, password string) (string, error) {
	err := d.binds.do(ctx, func(c *ldap.Conn) error {
		return c.Bind(dn, password)
	})
	switch {
	case err == nil:
		if dn == d.timingDN {
			// Cannot happen unless someone created the entry; never let it log in.
			d.log.ErrorContext(ctx, "ldap bind to the timing DN succeeded; remove that entry", "dn", dn)
			return ReasonUnknownID, nil
		}
		return "", nil
	case errors.Is(err, ErrDirectoryUnavailable):
		return "", err
	case dn == d.timingDN:
		// Whatever the server says about a DN that does not exist, the
		// answer is already decided.
		return ReasonUnknownID, nil
	case hasCode(err, ldap.LDAPResultInvalidCredentials):
		return ReasonWrongPassword, nil
	case hasCode(err, ldap.LDAPResultNoSuchObject):
		// Deleted between search and bind.
		return ReasonUnknownID, nil
	case hasCode(err, ldap.LDAPResultInappropriateAuthentication, ldap.LDAPResultConstraintViolation,
		ldap.LDAPResultInsufficientAccessRights, ldap.LDAPResultUnwillingToPerform):
		// Servers refuse binds of locked or inactivated accounts with these
		// codes: a refusal of this account, not an outage.
		d.log.InfoContext(ctx, "ldap refused bind", "dn", dn, "error", err)
		return ReasonAccountRefused, nil
	default:
		return "", unavailable(fmt.Errorf("bind: %w", err))
	}
}

// userFromEntry maps a directory entry onto User and resolves groups.
func (d *Directory) userFromEntry(ctx context.Context, id string, e *ldap.Entry, disabled bool) (*User, error) {
	a := d.cfg.Attributes
	u := &User{
		ID:            firstValue(e, a.ID),
		DN:            e.DN,
		DisplayName:   firstValue(e, a.DisplayName),
		DisplayNameJA: firstValue(e, a.DisplayNameJA),
		Mail:          firstValue(e, a.Mail),
		Disabled:      disabled,
		Attributes:    make(map[string][]string, len(d.userAttrs)),
	}
	if u.ID == "" {
		u.ID = id
	}
	for _, name := range d.userAttrs {
		// Exact descriptions only: asking for displayName also returns
		// displayName;lang-ja, which must not leak into the plain name.
		if vals := e.GetEqualFoldAttributeValues(name); len(vals) > 0 {
			u.Attributes[name] = append([]string(nil), vals...)
		}
	}

	switch d.cfg.Groups.Mode {
	case GroupsMemberOf:
		var names []string
		for _, dn := range e.GetEqualFoldAttributeValues(d.cfg.Groups.Attribute) {
			if name, ok := groupNameFromDN(dn); ok {
				names = append(names, name)
			}
		}
		u.Groups = sortedUnique(names)
	case GroupsSearch:
		names, err := d.searchGroups(ctx, e.DN)
		if err != nil {
			return nil, err
		}
		u.Groups = names
	}
	return u, nil
}

// searchGroups finds the names of the groups that list dn as a member.
func (d *Directory) searchGroups(ctx context.Context, dn string) ([]string, error) {
	g := d.cfg.Groups
	req := ldap.NewSearchRequest(g.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, d.timeLimit(), false, groupFilter(g.Filter, dn), []string{g.NameAttribute}, nil)
	res, err := d.search(ctx, req)
	switch {
	case err == nil:
	case errors.Is(err, ErrDirectoryUnavailable):
		return nil, err
	default:
		d.log.ErrorContext(ctx, "ldap group search failed", "base", g.BaseDN, "error", err)
		return nil, unavailable(fmt.Errorf("group search: %w", err))
	}
	var names []string
	for _, e := range res.Entries {
		if name := firstValue(e, g.NameAttribute); name != "" {
			names = append(names, name)
		}
	}
	return sortedUnique(names), nil
}

// ErrNoMemberOf: groups come from the memberOf attribute, yet no entry
// under the user base carries it (a directory without the memberof
// overlay), so nobody is in any group.
var ErrNoMemberOf = errors.New("ldapstore: no entry carries the group attribute")

// CheckGroups looks once for any entry under the user base with the
// memberof mode's attribute. It returns ErrNoMemberOf when there is none,
// an error wrapping ErrDirectoryUnavailable when the directory cannot be
// asked, and nil otherwise (and in the other group modes).
func (d *Directory) CheckGroups(ctx context.Context) error {
	if d.cfg.Groups.Mode != GroupsMemberOf {
		return nil
	}
	req := ldap.NewSearchRequest(d.cfg.UserBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		1, d.timeLimit(), true, "("+ldap.EscapeFilter(d.cfg.Groups.Attribute)+"=*)", []string{"1.1"}, nil)
	res, err := d.search(ctx, req)
	switch {
	case err == nil:
	case hasCode(err, ldap.LDAPResultSizeLimitExceeded):
		return nil // more than one: plenty
	case errors.Is(err, ErrDirectoryUnavailable):
		return err
	default:
		return unavailable(fmt.Errorf("group attribute check: %w", err))
	}
	if len(res.Entries) == 0 {
		return ErrNoMemberOf
	}
	return nil
}

// timeLimit is the server-side limit in whole seconds, at least 1.
func (d *Directory) timeLimit() int {
	return int(math.Max(1, math.Ceil(d.cfg.OperationTimeout.Seconds())))
}

// firstValue returns the first value of the attribute with exactly this
// description (case-insensitive).
func firstValue(e *ldap.Entry, name string) string {
	for _, attr := range e.Attributes {
		if strings.EqualFold(attr.Name, name) && len(attr.Values) > 0 {
			return attr.Values[0]
		}
	}
	return ""
}

// search runs req on a pooled service connection.
func (d *Directory) search(ctx context.Context, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	var res *ldap.SearchResult
	err := d.service.do(ctx, func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	return res, err
}
