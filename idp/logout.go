package idp

import (
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/campusidp/campusidp/store"
)

// Single logout: every service that gets a login from a browser session is
// remembered in the session (a participant), and a logout from any entry
// point (the ☰ menu, a SAML LogoutRequest, an OIDC end_session) tells each
// of them through its front-end: SAML SPs and OIDC front-channel clients
// by frames of the logout page, OIDC back-channel clients by logout tokens
// posted from the server. The logout's progress is a short-lived record
// (a walk) that the pages read by its unguessable ID: the browser session
// itself has already ended when they are shown.

// Protocols of a participant.
const (
	ProtocolSAML = "saml"
	ProtocolOIDC = "oidc"
)

// How a participant is told of a logout.
const (
	ChannelFront = "front" // a frame of the logout page
	ChannelBack  = "back"  // a server-to-server request
	ChannelNone  = "none"  // the service has no logout endpoint
)

// Results of telling one participant.
const (
	LogoutOK          = "ok"
	LogoutFailed      = "failed"
	LogoutPending     = "pending"     // asked; no answer yet
	LogoutRetrying    = "retrying"    // back channel: the first attempt failed, retries run
	LogoutRequested   = "requested"   // OIDC front channel: asked, which gives no answer by design
	LogoutNoAnswer    = "no_answer"   // front channel: no answer within the wait
	LogoutUnsupported = "unsupported" // no logout endpoint: the service may still be signed in
)

const (
	sessParticipants = "participants" // []Participant
	sessSID          = "sid"          // the session's ID for OIDC sid claims
	// sessLogoutAskedBy is the application an unconfirmed logout request
	// named ("protocol\x00id").
	sessLogoutAskedBy = "logout_asked_by"
	recordLogoutWalk  = "logout_walk"
	// logoutWalkLifetime is how long a logout's results can be looked at,
	// and how long a late answer or a back-channel retry can still record.
	logoutWalkLifetime = time.Hour
)

// Participant is a service that got a login from this browser session,
// with what its front-end needs to log the user out there.
type Participant struct {
	Protocol string `json:"protocol"`
	// ID is the SP's entity ID or the OIDC client_id.
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// SAML: the NameID and SessionIndex of the latest assertion.
	NameID       string `json:"name_id,omitempty"`
	NameIDFormat string `json:"name_id_format,omitempty"`
	SessionIndex string `json:"session_index,omitempty"`
	// OIDC: the subject the client knows and the session's sid.
	Subject string `json:"sub,omitempty"`
	SID     string `json:"sid,omitempty"`
}

func init() { gob.Register([]Participant(nil)) }

// LogoutNotifier is what a protocol front-end does at a logout.
type LogoutNotifier interface {
	// LogoutChannel says how p is told. For the front channel it returns
	// the URL the logout page loads in a frame for item n of the walk, and
	// the origins that frame navigates to (for the page's frame-src).
	LogoutChannel(p Participant, walkID string, n int) (channel, frameURL string, origins []string)
	// SendLogout tells p over the back channel, within the notifier's own
	// short timeout. An error means the first attempt failed; the notifier
	// then retries in the background and reports the end with
	// RecordLogoutResult, or returns ErrLogoutNotRetried (wrapped) when it
	// will not.
	SendLogout(ctx context.Context, p Participant, walkID string, n int) error
}

// RegisterLogout makes n the notifier of protocol's participants; the
// front-ends call it when they mount.
func (a *App) RegisterLogout(protocol string, n LogoutNotifier) {
	a.logoutMu.Lock()
	defer a.logoutMu.Unlock()
	if a.notifiers == nil {
		a.notifiers = map[string]LogoutNotifier{}
	}
	a.notifiers[protocol] = n
}

func (a *App) notifier(protocol string) LogoutNotifier {
	a.logoutMu.RLock()
	defer a.logoutMu.RUnlock()
	return a.notifiers[protocol]
}

// TrackParticipant remembers in the browser session that p got a login,
// replacing what was remembered of the same service, and returns the
// session's sid (made on first use). It changes the session only when
// something changed, so a repeated single sign-on writes nothing more.
func (a *App) TrackParticipant(ctx context.Context, p Participant) string {
	sid := a.sessions.GetString(ctx, sessSID)
	if sid == "" {
		sid = randomToken(16)
		a.sessions.Put(ctx, sessSID, sid)
	}
	if p.Protocol == ProtocolOIDC {
		p.SID = sid
	}
	list := a.participants(ctx)
	out := make([]Participant, 0, len(list)+1)
	for _, q := range list {
		if q.Protocol == p.Protocol && q.ID == p.ID {
			if q == p {
				return sid
			}
			continue
		}
		out = append(out, q)
	}
	out = append(out, p)
	if limit := a.cfg.Logout.MaxServices; limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	a.sessions.Put(ctx, sessParticipants, out)
	return sid
}

func (a *App) participants(ctx context.Context) []Participant {
	list, _ := a.sessions.Get(ctx, sessParticipants).([]Participant)
	return list
}

// LogoutItem is one participant in a logout and how telling it went.
type LogoutItem struct {
	Participant
	Channel string `json:"channel"`
	Result  string `json:"result"`
	// Frame is the URL the logout page loads for a front-channel item.
	Frame   string   `json:"frame,omitempty"`
	Origins []string `json:"origins,omitempty"`
}

// LogoutWalk is one logout's progress.
type LogoutWalk struct {
	ID      string       `json:"id"`
	User    string       `json:"user"`
	Via     string       `json:"via"`
	Items   []LogoutItem `json:"items"`
	Expires time.Time    `json:"expires"`
	// Finish is where the results lead: a path of this IdP (the walk ID is
	// added as ?walk=) or a URL the front-end validated; "" for none.
	Finish string `json:"finish,omitempty"`
	// FinishData is the front-end's state for Finish (the initiating SP's
	// LogoutRequest).
	FinishData json.RawMessage `json:"finish_data,omitempty"`
}

// Partial says whether some service could not be, or may not have been,
// logged out.
func (w *LogoutWalk) Partial() bool {
	for _, it := range w.Items {
		if it.Result != LogoutOK && it.Result != LogoutRequested {
			return true
		}
	}
	return false
}

func (w *LogoutWalk) frontChannel() bool {
	for _, it := range w.Items {
		if it.Channel == ChannelFront {
			return true
		}
	}
	return false
}

// LogoutOptions describe a logout's entry point.
type LogoutOptions struct {
	// Via names the entry point for the audit log: menu, saml, oidc,
	// protocol_confirmed.
	Via string
	// Initiator is the service that asked (protocol and ID); it gets the
	// front-end's own answer instead of a logout request.
	Initiator *Participant
	// AskedBy is an application named, unproven, by a confirmed logout
	// request: left out only when it cannot be told anyway.
	AskedBy *Participant
	// Finish and FinishData: see LogoutWalk.
	Finish     string
	FinishData []byte
}

// ErrLogoutNotRetried marks a SendLogout failure after which no retry
// follows: the participant is reported as not logged out at once.
var ErrLogoutNotRetried = errors.New("idp: logout not delivered, no retry")

// ErrLogoutWalkNotFound: no such logout, or it is too old.
var ErrLogoutWalkNotFound = errors.New("idp: logout not found")

// Logout ends the browser's session and starts telling every service that
// got a login from it. It returns where to send the browser: the page that
// walks the front-channel services, the results, or (when no service is
// left to tell) Finish or the logged-out page. Back-channel services get
// their first attempt before it returns, each bounded by its notifier's
// timeout and all at once.
func (a *App) Logout(ctx context.Context, opts LogoutOptions) (string, error) {
	u := a.currentUser(ctx)
	list := a.participants(ctx)
	if u != nil {
		a.audit(ctx, "logout", u.ID, map[string]string{"via": opts.Via})
	}
	if err := a.sessions.Destroy(ctx); err != nil {
		return "", err
	}
	var items []LogoutItem
	for _, p := range list {
		if opts.Initiator != nil && p.Protocol == opts.Initiator.Protocol && p.ID == opts.Initiator.ID {
			continue
		}
		if opts.AskedBy != nil && p.Protocol == opts.AskedBy.Protocol && p.ID == opts.AskedBy.ID && !a.canTell(p) {
			continue
		}
		items = append(items, LogoutItem{Participant: p, Channel: ChannelNone, Result: LogoutUnsupported})
	}
	if u == nil || (len(items) == 0 && len(opts.FinishData) == 0) {
		if opts.Finish != "" && !strings.HasPrefix(opts.Finish, "/") {
			return opts.Finish, nil
		}
		return "/logout", nil
	}
	walk := &LogoutWalk{ID: randomToken(24), User: u.ID, Via: opts.Via, Items: items, Expires: a.now().Add(logoutWalkLifetime),
		Finish: opts.Finish, FinishData: opts.FinishData}
	var wg sync.WaitGroup
	for i := range walk.Items {
		it := &walk.Items[i]
		n := a.notifier(it.Protocol)
		if n == nil {
			continue
		}
		it.Channel, it.Frame, it.Origins = n.LogoutChannel(it.Participant, walk.ID, i)
		switch it.Channel {
		case ChannelFront:
			it.Result = LogoutPending
			if it.Protocol == ProtocolOIDC {
				it.Result = LogoutRequested
			}
		case ChannelBack:
			wg.Go(func() {
				if err := n.SendLogout(ctx, it.Participant, walk.ID, i); err != nil {
					it.Result = LogoutRetrying
					if errors.Is(err, ErrLogoutNotRetried) {
						it.Result = LogoutFailed
					}
					return
				}
				it.Result = LogoutOK
			})
		default:
			it.Channel = ChannelNone
		}
	}
	wg.Wait()
	for _, it := range walk.Items {
		switch it.Result {
		case LogoutOK, LogoutUnsupported, LogoutRequested, LogoutFailed:
			// Settled now; front-channel SAML answers and back-channel
			// retries are audited when they settle.
			a.auditPropagation(ctx, walk, it)
		}
	}
	if err := a.saveWalk(ctx, walk); err != nil {
		return "", err
	}
	if walk.frontChannel() {
		return "/logout/walk?id=" + url.QueryEscape(walk.ID), nil
	}
	return "/logout/done?id=" + url.QueryEscape(walk.ID), nil
}

// canTell says whether p's front-end has a way to tell it of a logout.
func (a *App) canTell(p Participant) bool {
	n := a.notifier(p.Protocol)
	if n == nil {
		return false
	}
	ch, _, _ := n.LogoutChannel(p, "", 0)
	return ch == ChannelFront || ch == ChannelBack
}

func (a *App) auditPropagation(ctx context.Context, walk *LogoutWalk, it LogoutItem) {
	typ := "logout_propagated"
	if it.Result != LogoutOK && it.Result != LogoutRequested {
		typ = "logout_propagation_failed"
	}
	a.audit(ctx, typ, walk.User, map[string]string{"service": it.ID, "protocol": it.Protocol,
		"channel": it.Channel, "result": it.Result})
	a.metrics.LogoutPropagated(it.Protocol, it.Channel, it.Result)
}

func (a *App) saveWalk(ctx context.Context, w *LogoutWalk) error {
	raw, err := json.Marshal(w)
	if err != nil {
		return err
	}
	if err := a.store.PutRecord(ctx, recordLogoutWalk, w.ID, raw, w.Expires); err != nil {
		return fmt.Errorf("idp: saving logout: %w", err)
	}
	return nil
}

// LogoutWalk reads a logout's progress.
func (a *App) LogoutWalk(ctx context.Context, id string) (*LogoutWalk, error) {
	if id == "" || len(id) > 64 {
		return nil, ErrLogoutWalkNotFound
	}
	raw, err := a.store.GetRecord(ctx, recordLogoutWalk, id, a.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrLogoutWalkNotFound
	}
	if err != nil {
		return nil, err
	}
	var w LogoutWalk
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// RecordLogoutResult records how telling item n of a logout ended (a
// SAML LogoutResponse, the last back-channel retry), audits it and counts
// it. A result arriving for an item already settled is ignored.
func (a *App) RecordLogoutResult(ctx context.Context, walkID string, n int, result string) error {
	var settled *LogoutItem
	var walk LogoutWalk
	// The services answer into their frames at the same moment: each
	// result is written at once (retried against the others), not as a
	// compare-and-swap at the request's commit that all but one would lose.
	err := a.store.UpdateRecord(store.SpendAtOnce(ctx), recordLogoutWalk, walkID, a.now(), func(old []byte) ([]byte, error) {
		settled = nil
		if err := json.Unmarshal(old, &walk); err != nil {
			return nil, err
		}
		if n < 0 || n >= len(walk.Items) {
			return nil, ErrLogoutWalkNotFound
		}
		it := &walk.Items[n]
		switch it.Result {
		case LogoutPending, LogoutRetrying, LogoutNoAnswer:
		default:
			return old, nil
		}
		it.Result = result
		settled = it
		return json.Marshal(&walk)
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrLogoutWalkNotFound
	}
	if err != nil {
		return err
	}
	if settled != nil {
		a.auditPropagation(ctx, &walk, *settled)
	}
	return nil
}

// settleUnanswered marks the front-channel items still pending as not
// answered (when the results are shown), auditing each once.
func (a *App) settleUnanswered(ctx context.Context, w *LogoutWalk) error {
	pending := false
	for _, it := range w.Items {
		pending = pending || it.Result == LogoutPending
	}
	if !pending {
		return nil
	}
	var changed []LogoutItem
	// At once, like RecordLogoutResult: a late answer may land meanwhile.
	err := a.store.UpdateRecord(store.SpendAtOnce(ctx), recordLogoutWalk, w.ID, a.now(), func(old []byte) ([]byte, error) {
		changed = nil
		if err := json.Unmarshal(old, w); err != nil {
			return nil, err
		}
		for i := range w.Items {
			if w.Items[i].Result == LogoutPending {
				w.Items[i].Result = LogoutNoAnswer
				changed = append(changed, w.Items[i])
			}
		}
		return json.Marshal(w)
	})
	if err != nil {
		return err
	}
	for _, it := range changed {
		a.auditPropagation(ctx, w, it)
	}
	return nil
}

// Pages of a logout.

type logoutRow struct {
	N       int
	Name    string
	Channel string
	Result  string
	Frame   string
	// AwaitLoad: an OIDC front-channel frame, which answers nothing;
	// logout.js waits for it to load.
	AwaitLoad bool
	// States are every result's words, the current one shown: logout.js
	// switches between them as answers come in.
	States []resultState
}

type resultState struct {
	Name, Key string
	Shown     bool
}

var logoutResults = []string{LogoutOK, LogoutFailed, LogoutPending, LogoutRetrying, LogoutRequested, LogoutNoAnswer, LogoutUnsupported}

func statesFor(result string) []resultState {
	out := make([]resultState, len(logoutResults))
	for i, r := range logoutResults {
		out[i] = resultState{Name: r, Key: "logout.result." + r, Shown: r == result}
	}
	return out
}

type logoutPage struct {
	ID     string
	Rows   []logoutRow
	Status string // where logout.js reads the progress
	Next   string // the results page
	WaitMS int64
	Wait   int // seconds, for the no-script refresh
	Finish string
	// Partial: some service may still be signed in.
	Partial bool
	// Confirm lists the services an asked-for logout will tell.
	Confirm bool
}

func rowsOf(w *LogoutWalk) []logoutRow {
	rows := make([]logoutRow, len(w.Items))
	for i, it := range w.Items {
		rows[i] = logoutRow{N: i, Name: cmpOr(it.Name, it.ID), Channel: it.Channel, Result: it.Result, Frame: it.Frame,
			AwaitLoad: it.Result == LogoutRequested, States: statesFor(it.Result)}
	}
	return rows
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// logoutCSP lets the walk page run logout.js, read its progress and frame
// the services' logout endpoints; nothing else is loosened.
func logoutCSP(frames []string) string {
	return "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; " +
		"frame-src 'self' " + strings.Join(frames, " ") + "; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

func (a *App) loadWalk(w http.ResponseWriter, r *http.Request) *LogoutWalk {
	walk, err := a.LogoutWalk(r.Context(), r.URL.Query().Get("id"))
	if errors.Is(err, ErrLogoutWalkNotFound) {
		// An old link: the logout it belonged to is over.
		http.Redirect(w, r, "/logout", http.StatusSeeOther)
		return nil
	}
	if err != nil {
		a.serverError(w, r, err)
		return nil
	}
	return walk
}

// handleLogoutWalk shows the services being logged out and loads the
// front-channel ones in frames; logout.js follows their answers and moves
// on to the results, and without script the page refreshes to them.
func (a *App) handleLogoutWalk(w http.ResponseWriter, r *http.Request) {
	walk := a.loadWalk(w, r)
	if walk == nil {
		return
	}
	var origins []string
	for _, it := range walk.Items {
		for _, o := range it.Origins {
			if o != "" && !strings.ContainsAny(o, " ;,'\"\t\r\n") {
				origins = append(origins, o)
			}
		}
	}
	wait := a.cfg.Logout.FrontChannelWait
	q := "?id=" + url.QueryEscape(walk.ID)
	w.Header().Set("Content-Security-Policy", logoutCSP(origins))
	a.renderPage(w, r, http.StatusOK, "logout_walk", "", logoutPage{ID: walk.ID, Rows: rowsOf(walk),
		Status: "/logout/status" + q, Next: "/logout/done" + q, WaitMS: wait.Milliseconds(),
		Wait: int((wait + time.Second - 1) / time.Second)})
}

type walkStatus struct {
	Items []walkStatusItem `json:"items"`
}

type walkStatusItem struct {
	Result string `json:"result"`
}

func (a *App) handleLogoutStatus(w http.ResponseWriter, r *http.Request) {
	walk, err := a.LogoutWalk(r.Context(), r.URL.Query().Get("id"))
	if errors.Is(err, ErrLogoutWalkNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	st := walkStatus{Items: make([]walkStatusItem, len(walk.Items))}
	for i, it := range walk.Items {
		st.Items[i].Result = it.Result
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
}

// handleLogoutDone shows each service's result. When every service was
// logged out and the logout has somewhere to go (the initiating
// application), it goes there at once.
func (a *App) handleLogoutDone(w http.ResponseWriter, r *http.Request) {
	walk := a.loadWalk(w, r)
	if walk == nil {
		return
	}
	if err := a.settleUnanswered(r.Context(), walk); err != nil {
		a.serverError(w, r, err)
		return
	}
	finish := walk.Finish
	if strings.HasPrefix(finish, "/") {
		finish += "?walk=" + url.QueryEscape(walk.ID)
	}
	partial := walk.Partial()
	if finish != "" && !partial {
		if strings.HasPrefix(finish, "/") {
			http.Redirect(w, r, finish, http.StatusSeeOther)
		} else {
			a.RedirectOut(w, r, finish)
		}
		return
	}
	a.renderPage(w, r, http.StatusOK, "logged_out", "", logoutPage{ID: walk.ID, Rows: rowsOf(walk),
		Finish: finish, Partial: partial})
}
