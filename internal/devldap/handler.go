package devldap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jimlambrt/gldap"
)

// vendorName is announced in the root DSE so operators can tell the dev
// directory from a real one.
const vendorName = "campusidp devldap"

// pagingControlOID is the simple paged results control (RFC 2696).
const pagingControlOID = gldap.ControlTypePaging

type bindState int

const (
	anonymous bindState = iota
	boundUser
	boundService
)

// handler answers LDAP requests from the read-only directory. Bind state is
// kept per gldap connection, since LDAP authorization belongs to the
// connection, not to a request.
type handler struct {
	dir        *directory
	logger     *slog.Logger
	serviceKey string
	rootDSE    *entry

	mu       sync.Mutex
	sessions map[int]bindState

	// probeToken is requested as an attribute by Start's readiness probe; a
	// probe that sees it answered knows it reached this server, not some
	// other process that took the port.
	probeToken string
	probeSeen  atomic.Bool
}

func newHandler(dir *directory, logger *slog.Logger, probeToken string) (*handler, error) {
	service, err := dir.lookup(ServiceDN)
	if err != nil || service == nil {
		return nil, fmt.Errorf("devldap: service account %q missing from the directory", ServiceDN)
	}
	root := &entry{attrs: []attribute{
		rootAttr("objectClass", "top"),
		rootAttr("namingContexts", BaseDN),
		rootAttr("supportedLDAPVersion", "3"),
		rootAttr("supportedControl", pagingControlOID),
		rootAttr("vendorName", vendorName),
	}}
	return &handler{
		dir:        dir,
		logger:     logger,
		serviceKey: service.key(),
		rootDSE:    root,
		sessions:   map[int]bindState{},
		probeToken: probeToken,
	}, nil
}

func rootAttr(name string, values ...string) attribute {
	desc, err := parseAttrDesc(name)
	if err != nil {
		panic(err) // constant names above; cannot fail
	}
	return attribute{name: name, desc: desc, values: values}
}

func (h *handler) mux() (*gldap.Mux, error) {
	mux, err := gldap.NewMux()
	if err != nil {
		return nil, err
	}
	for _, add := range []func() error{
		func() error { return mux.Bind(h.bind) },
		func() error { return mux.Search(h.search) },
		func() error { return mux.Modify(h.refuseModify) },
		func() error { return mux.Add(h.refuseWith(gldap.ApplicationAddResponse)) },
		func() error { return mux.Delete(h.refuseWith(gldap.ApplicationDelResponse)) },
		func() error { return mux.DefaultRoute(h.refuseWith(gldap.ApplicationExtendedResponse)) },
	} {
		if err := add(); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

func (h *handler) state(conn int) bindState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[conn]
}

func (h *handler) setState(conn int, s bindState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s == anonymous {
		delete(h.sessions, conn)
		return
	}
	h.sessions[conn] = s
}

// forget drops the bind state of a closed connection; gldap reuses no IDs,
// but the map must not grow without bound.
func (h *handler) forget(conn int) { h.setState(conn, anonymous) }

func (h *handler) write(w *gldap.ResponseWriter, r gldap.Response) {
	if err := w.Write(r); err != nil {
		h.logger.Debug("ldap response not delivered", "err", err)
	}
}

func (h *handler) bind(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
	defer h.write(w, resp)

	// Any bind, successful or not, first drops the previous identity
	// (RFC 4511 section 4.2.1).
	conn := r.ConnectionID()
	h.setState(conn, anonymous)

	m, err := r.GetSimpleBindMessage()
	if err != nil {
		resp.SetResultCode(gldap.ResultAuthMethodNotSupported)
		resp.SetDiagnosticMessage("only simple bind is supported")
		return
	}
	password := string(m.Password)
	switch {
	case m.UserName == "" && password == "":
		resp.SetResultCode(gldap.ResultSuccess) // anonymous: may read the root DSE only
		return
	case m.UserName == "":
		return // a password without a name is invalid credentials
	case password == "":
		// An unauthenticated bind (RFC 4513 section 5.1.2) must never look
		// like a successful login.
		resp.SetResultCode(gldap.ResultUnwillingToPerform)
		resp.SetDiagnosticMessage("unauthenticated bind (DN with no password) disallowed")
		return
	}
	e, err := h.dir.lookup(m.UserName)
	if err != nil {
		resp.SetResultCode(gldap.ResultInvalidDNSyntax)
		resp.SetDiagnosticMessage("invalid DN")
		return
	}
	if e == nil || !h.passwordOK(e, password) {
		h.logger.Info("ldap bind failed", "dn", m.UserName)
		return
	}
	state := boundUser
	if e.key() == h.serviceKey {
		state = boundService
	}
	h.setState(conn, state)
	resp.SetResultCode(gldap.ResultSuccess)
	h.logger.Debug("ldap bind", "dn", e.dn)
}

func (h *handler) passwordOK(e *entry, password string) bool {
	for _, stored := range e.values(attrDesc{typ: "userpassword"}) {
		if passwordMatches(stored, password) {
			return true
		}
	}
	return false
}

func (h *handler) search(w *gldap.ResponseWriter, r *gldap.Request) {
	done := r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	defer h.write(w, done)

	m, err := r.GetSearchMessage()
	if err != nil {
		done.SetResultCode(gldap.ResultProtocolError)
		return
	}
	var paging *gldap.ControlPaging
	for _, c := range m.Controls {
		switch c := c.(type) {
		case *gldap.ControlPaging:
			paging = c
		case *gldap.ControlString:
			if c.Criticality {
				done.SetResultCode(gldap.ResultUnavailableCriticalExtension)
				done.SetDiagnosticMessage("unsupported critical control " + c.ControlType)
				return
			}
		}
	}
	f, err := parseFilter(m.Filter)
	if err != nil {
		done.SetResultCode(gldap.ResultProtocolError)
		done.SetDiagnosticMessage(err.Error())
		return
	}
	sel := parseSelection(m.Attributes)

	// The root DSE answers everyone, so health checks work before binding.
	if m.BaseDN == "" && m.Scope == gldap.BaseObject {
		if h.probeToken != "" && sel.requested(h.probeToken) {
			h.probeSeen.Store(true)
		}
		if f.eval(h.rootDSE, h.dir.known) == isTrue {
			h.write(w, h.entryResponse(r, h.rootDSE, sel, m.TypesOnly, true))
		}
		return
	}
	if h.state(r.ConnectionID()) != boundService {
		done.SetResultCode(gldap.ResultInsufficientAccessRights)
		done.SetDiagnosticMessage("only the service account may search")
		return
	}
	base, err := h.dir.lookup(m.BaseDN)
	if err != nil {
		done.SetResultCode(gldap.ResultInvalidDNSyntax)
		done.SetDiagnosticMessage("invalid base DN")
		return
	}
	if base == nil {
		done.SetResultCode(gldap.ResultNoSuchObject)
		if keys, err := normalizeDN(m.BaseDN); err == nil {
			done.SetMatchedDN(h.dir.closestAncestor(keys))
		}
		return
	}
	scope := int64(m.Scope)
	if scope < scopeBase || scope > scopeChildren {
		done.SetResultCode(gldap.ResultProtocolError)
		done.SetDiagnosticMessage("unknown search scope")
		return
	}

	var matches []*entry
	for _, e := range h.dir.entries {
		if e.inScope(base, scope) && f.eval(e, h.dir.known) == isTrue {
			matches = append(matches, e)
		}
	}
	truncated := m.SizeLimit > 0 && int64(len(matches)) > m.SizeLimit
	if truncated {
		matches = matches[:m.SizeLimit]
	}
	page, next, err := pageOf(matches, paging, queryFingerprint(m))
	if err != nil {
		done.SetResultCode(gldap.ResultUnwillingToPerform)
		done.SetDiagnosticMessage(err.Error())
		return
	}
	for _, e := range page {
		h.write(w, h.entryResponse(r, e, sel, m.TypesOnly, false))
	}
	if paging != nil {
		ctrl, err := gldap.NewControlPaging(uint32(len(matches)))
		if err == nil {
			ctrl.SetCookie(next)
			done.SetControls(ctrl)
		}
	}
	if truncated && next == nil {
		done.SetResultCode(gldap.ResultSizeLimitExceeded)
	}
	h.logger.Debug("ldap search", "base", m.BaseDN, "scope", scope, "filter", m.Filter, "entries", len(page))
}

// entryResponse builds the entry with the selected attributes. userPassword
// is never returned, as with the usual "auth only" ACL of real servers.
func (h *handler) entryResponse(r *gldap.Request, e *entry, sel selection, typesOnly, operational bool) *gldap.SearchResponseEntry {
	resp := r.NewSearchResponseEntry(e.dn)
	for _, a := range e.attrs {
		if a.desc.typ == "userpassword" {
			continue
		}
		// In the root DSE everything but objectClass is operational
		// (RFC 4512 section 5.1): returned only when asked for.
		isOperational := operational && a.desc.typ != "objectclass"
		if !sel.picks(a.desc, isOperational) {
			continue
		}
		var values []string
		if !typesOnly {
			values = a.values
		}
		resp.AddAttribute(a.name, values)
	}
	return resp
}

// selection is the attribute list of a search request.
type selection struct {
	raw         []string
	allUser     bool
	operational bool
	named       []attrDesc
}

func parseSelection(attrs []string) selection {
	s := selection{raw: attrs}
	if len(attrs) == 0 {
		s.allUser = true
		return s
	}
	for _, a := range attrs {
		switch a {
		case "*":
			s.allUser = true
		case "+":
			s.operational = true
		case "1.1":
			// "no attributes"; meaningful only when alone, which the empty
			// named list already gives.
		default:
			// RFC 4511: unrecognized names in the list are ignored.
			if d, err := parseAttrDesc(a); err == nil {
				s.named = append(s.named, d)
			}
		}
	}
	return s
}

func (s selection) picks(d attrDesc, operational bool) bool {
	if operational && s.operational || !operational && s.allUser {
		return true
	}
	for _, n := range s.named {
		if n.covers(d) {
			return true
		}
	}
	return false
}

func (s selection) requested(name string) bool {
	for _, a := range s.raw {
		if a == name {
			return true
		}
	}
	return false
}

// queryFingerprint ties a paging cookie to the search it came from.
func queryFingerprint(m *gldap.SearchMessage) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d\x00%s", m.BaseDN, m.Scope, m.Filter, m.SizeLimit, strings.Join(m.Attributes, "\x00"))
	return h.Sum64()
}

var errBadCookie = errors.New("invalid paged results cookie")

// pageOf returns the slice of matches for a paged search and the cookie for
// the next page (nil when done). The directory is immutable and ordered, so
// the cookie can simply carry the offset; no server-side state is needed.
func pageOf(matches []*entry, paging *gldap.ControlPaging, fingerprint uint64) ([]*entry, []byte, error) {
	if paging == nil {
		return matches, nil, nil
	}
	offset := 0
	if len(paging.Cookie) > 0 {
		if len(paging.Cookie) < 9 {
			return nil, nil, errBadCookie
		}
		if binary.BigEndian.Uint64(paging.Cookie[:8]) != fingerprint {
			return nil, nil, errBadCookie
		}
		n, err := strconv.Atoi(string(paging.Cookie[8:]))
		if err != nil || n <= 0 || n > len(matches) {
			return nil, nil, errBadCookie
		}
		offset = n
		if paging.PagingSize == 0 {
			return nil, nil, nil // the client abandons the paged search
		}
	}
	size := int(paging.PagingSize)
	if size == 0 || offset+size >= len(matches) {
		return matches[offset:], nil, nil
	}
	end := offset + size
	cookie := binary.BigEndian.AppendUint64(nil, fingerprint)
	cookie = strconv.AppendInt(cookie, int64(end), 10)
	return matches[offset:end], cookie, nil
}

func (h *handler) refuseModify(w *gldap.ResponseWriter, r *gldap.Request) {
	h.write(w, r.NewModifyResponse(
		gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
		gldap.WithDiagnosticMessage("the dev directory is read-only")))
}

func (h *handler) refuseWith(applicationCode int) gldap.HandlerFunc {
	return func(w *gldap.ResponseWriter, r *gldap.Request) {
		h.write(w, r.NewResponse(
			gldap.WithApplicationCode(applicationCode),
			gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
			gldap.WithDiagnosticMessage("the dev directory is read-only and supports bind and search only")))
	}
}
