package oidcprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
	"github.com/campusidp/campusidp/metrics"
	"github.com/campusidp/campusidp/store"
)

// Store is the persistence the provider needs; *store.DB implements it.
type Store interface {
	PutRecord(ctx context.Context, kind, id string, value []byte, expires time.Time) error
	GetRecord(ctx context.Context, kind, id string, now time.Time) ([]byte, error)
	DeleteRecord(ctx context.Context, kind, id string) error
	UpdateRecord(ctx context.Context, kind, id string, now time.Time, fn func(old []byte) ([]byte, error)) error

	CreateOIDCGrant(ctx context.Context, g store.OIDCGrant, tokens ...store.OIDCToken) error
	RotateOIDCRefreshToken(ctx context.Context, oldID string, now time.Time, tokens ...store.OIDCToken) error
	GetOIDCToken(ctx context.Context, id string, now time.Time) (*store.OIDCToken, error)
	DeleteOIDCToken(ctx context.Context, id string) error
	RevokeOIDCGrant(ctx context.Context, grantID string, now, keepUntil time.Time) error
	DeleteExpiredOIDC(ctx context.Context, now time.Time) (int64, error)

	ListOIDCSigningKeys(ctx context.Context, now time.Time) ([]store.OIDCSigningKey, error)
	RotateOIDCSigningKey(ctx context.Context, next store.OIDCSigningKey, expectCurrent string, now, publishUntil time.Time) error
	RetireOIDCSigningKey(ctx context.Context, id string, now, publishUntil time.Time) error

	Ping(ctx context.Context) error

	// Failure budgets of client authentication (see clientauth.go).
	HitCounter(ctx context.Context, key string, now time.Time, window time.Duration) (store.Counter, error)
	UndoCounter(ctx context.Context, key string, now time.Time) error
}

// Directory reads accounts afresh for userinfo answers and refreshes, so a
// disabled account stops getting tokens and claims stay current.
type Directory interface {
	Lookup(ctx context.Context, id string) (*ldapstore.User, error)
}

const (
	recordAuthRequest = "oidc_auth_request"
	recordCode        = "oidc_code"
)

// Errors of the provider's own checks.
var (
	errInvalidToken = errors.New("oidcprovider: token unknown, expired or revoked")
	errCodeReplayed = errors.New("oidcprovider: authorization code used twice")
	errCodeExpired  = errors.New("oidcprovider: authorization code expired")
	errNotAccess    = errors.New("oidcprovider: not an access token of a user")
	errAccountGone  = errors.New("oidcprovider: account disabled or removed")
)

// Storage is the provider's op.Storage over the IdP store: authorization
// requests and codes as expiring records, grants and tokens in their own
// tables, signing keys in the store, accounts from the directory.
type Storage struct {
	store   Store
	dir     Directory
	clients map[string]*client
	claims  *claimMapper
	keys    *keyManager
	cfg     config.OIDC
	// requestLifetime is how long an authorization request waits for its
	// login: the login transaction's lifetime.
	requestLifetime time.Duration
	now             func() time.Time
	log             *slog.Logger
	app             App
	// defaultLogout is op's post-logout target when the client names
	// none: our own logged-out page.
	defaultLogout string
}

var (
	_ op.Storage                        = (*Storage)(nil)
	_ op.ClientCredentialsStorage       = (*Storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*Storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*Storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*Storage)(nil)
)

// codeRecord is an issued authorization code, kept past its redemption so
// that a second use is recognised.
type codeRecord struct {
	Request    *authRequest `json:"request"`
	ValidUntil time.Time    `json:"valid_until"`
	Redeemed   bool         `json:"redeemed,omitempty"`
}

func (s *Storage) client(id string) (*client, error) {
	c, ok := s.clients[id]
	if !ok {
		// The caller's string is not repeated: it may be anything.
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return c, nil
}

// CreateAuthRequest stores a validated authorization request. It enforces
// what op leaves open: the openid scope, the client's allowed scopes, and
// PKCE with S256 (op accepts a missing or plain challenge from confidential
// clients).
func (s *Storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	c, err := s.client(req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client").WithParent(err)
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if c.IsScopeAllowed(sc) && !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the client may not use the openid scope")
	}
	switch {
	case req.CodeChallenge == "" && c.confidential() && c.cfg.AllowMissingPKCE:
	case req.CodeChallenge == "":
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send code_challenge with code_challenge_method=S256")
	case req.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	requireMFA, requireKey := c.cfg.RequireMFA, false
	for _, acr := range req.ACRValues {
		if s.cfg.ACR.Demands(acr) {
			requireMFA = true
		}
		if s.cfg.ACR.DemandsPhishingResistant(acr) {
			requireMFA, requireKey = true, true
		}
	}
	now := s.now()
	a := &authRequest{
		ID:                  randomToken(24),
		ClientID:            c.GetID(),
		RedirectURI:         req.RedirectURI,
		State:               req.State,
		Nonce:               req.Nonce,
		Scopes:              scopes,
		ResponseType:        string(req.ResponseType),
		ResponseMode:        string(req.ResponseMode),
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod),
		Prompt:              req.Prompt,
		MaxAge:              req.MaxAge,
		HintSubject:         hintSubject,
		RequireMFA:          requireMFA,
		RequireKey:          requireKey,
		Created:             now,
	}
	if err := s.saveAuthRequest(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Storage) saveAuthRequest(ctx context.Context, a *authRequest) error {
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := s.store.PutRecord(ctx, recordAuthRequest, a.ID, raw, a.Created.Add(s.requestLifetime)); err != nil {
		return fmt.Errorf("oidcprovider: saving auth request: %w", err)
	}
	return nil
}

func (s *Storage) loadAuthRequest(ctx context.Context, id string) (*authRequest, error) {
	if id == "" || len(id) > 128 {
		return nil, store.ErrNotFound
	}
	raw, err := s.store.GetRecord(ctx, recordAuthRequest, id, s.now())
	if err != nil {
		return nil, err
	}
	var a authRequest
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("oidcprovider: decoding auth request: %w", err)
	}
	return &a, nil
}

// AuthRequestByID returns a stored authorization request.
func (s *Storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, err := s.loadAuthRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// SaveAuthCode issues code for a finished request. The code record carries
// the request, so the request itself is removed: its callback cannot issue
// a second code.
func (s *Storage) SaveAuthCode(ctx context.Context, id, code string) error {
	a, err := s.loadAuthRequest(ctx, id)
	if err != nil {
		return err
	}
	if !a.IsDone {
		return oidc.ErrServerError().WithDescription("authorization request is not finished")
	}
	now := s.now()
	raw, err := json.Marshal(codeRecord{Request: a, ValidUntil: now.Add(s.cfg.CodeLifetime)})
	if err != nil {
		return err
	}
	// The record outlives the code so that a replay is still recognised
	// (and revokes the tokens) while those tokens live.
	keep := now.Add(max(s.cfg.CodeLifetime, s.cfg.AccessTokenLifetime))
	if err := s.store.PutRecord(ctx, recordCode, digest(code), raw, keep); err != nil {
		return fmt.Errorf("oidcprovider: saving code: %w", err)
	}
	return s.store.DeleteRecord(ctx, recordAuthRequest, id)
}

// peekCode reads an issued code without redeeming it; ErrNotFound if it
// is unknown or its record expired.
func (s *Storage) peekCode(ctx context.Context, code string) (*codeRecord, error) {
	if code == "" {
		return nil, store.ErrNotFound
	}
	raw, err := s.store.GetRecord(ctx, recordCode, digest(code), s.now())
	if err != nil {
		return nil, err
	}
	var rec codeRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	if rec.Request == nil {
		return nil, errors.New("oidcprovider: code record without a request")
	}
	return &rec, nil
}

// AuthRequestByCode redeems a code: once only, within its lifetime. A
// second redemption revokes everything the first one produced.
func (s *Storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	now := s.now()
	var rec codeRecord
	err := s.store.UpdateRecord(ctx, recordCode, digest(code), now, func(old []byte) ([]byte, error) {
		rec = codeRecord{}
		if err := json.Unmarshal(old, &rec); err != nil {
			return nil, err
		}
		switch {
		case rec.Request == nil:
			return nil, errors.New("oidcprovider: code record without a request")
		case rec.Redeemed:
			return nil, errCodeReplayed
		case !now.Before(rec.ValidUntil):
			return nil, errCodeExpired
		}
		rec.Redeemed = true
		return json.Marshal(rec)
	})
	switch {
	case errors.Is(err, errCodeReplayed):
		a := rec.Request
		if rerr := s.store.RevokeOIDCGrant(ctx, a.ID, now, now.Add(s.cfg.CodeLifetime+time.Minute)); rerr != nil {
			return nil, rerr
		}
		s.log.WarnContext(ctx, "oidc authorization code replayed; its tokens are revoked", "client_id", a.ClientID)
		s.audit(ctx, "oidc_code_replayed", a.UserID, map[string]string{"client_id": a.ClientID})
		return nil, err
	case err != nil:
		return nil, err
	}
	return rec.Request, nil
}

// DeleteAuthRequest removes a request (op calls it once tokens are issued).
// At a code exchange there is nothing left to remove: SaveAuthCode deleted
// the request when it issued the code, so the token answer skips a
// statement that would find no row.
func (s *Storage) DeleteAuthRequest(ctx context.Context, id string) error {
	if isCodeExchange(ctx) {
		return nil
	}
	return s.store.DeleteRecord(ctx, recordAuthRequest, id)
}

type codeExchangeKey struct{}

// withCodeExchange marks a token request redeeming an authorization code.
func withCodeExchange(ctx context.Context) context.Context {
	return context.WithValue(ctx, codeExchangeKey{}, true)
}

func isCodeExchange(ctx context.Context) bool {
	v, _ := ctx.Value(codeExchangeKey{}).(bool)
	return v
}

// CreateAccessToken issues an access token without a refresh token: for a
// code without offline_access, or for client credentials.
func (s *Storage) CreateAccessToken(ctx context.Context, request op.TokenRequest) (string, time.Time, error) {
	now := s.now()
	var g store.OIDCGrant
	var data tokenData
	switch r := request.(type) {
	case *authRequest:
		g = store.OIDCGrant{ID: r.ID, ClientID: r.ClientID, UserID: r.UserID, Created: now,
			Expires: now.Add(s.cfg.AccessTokenLifetime)}
		data = tokenData{Subject: r.Subject, Scopes: r.Scopes, AuthTime: r.AuthTime, AMR: r.AMR, ACR: r.ACR, SID: r.SID}
	case *clientCredentialsRequest:
		g = store.OIDCGrant{ID: randomToken(24), ClientID: r.clientID, Created: now,
			Expires: now.Add(s.cfg.AccessTokenLifetime)}
		data = tokenData{Subject: r.clientID, Scopes: r.scopes}
	default:
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	data.GrantExpires = g.Expires
	access, err := s.newToken(store.OIDCAccessToken, randomToken(24), data, now, g.Expires)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.createGrant(ctx, g, access); err != nil {
		return "", time.Time{}, err
	}
	s.issued(metrics.TokenAccess)
	return access.ID, access.Expires, nil
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token:
// for a code with offline_access, or in exchange for a refresh token, which
// is then used up (rotation).
func (s *Storage) CreateAccessAndRefreshTokens(ctx context.Context, request op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	now := s.now()
	switch r := request.(type) {
	case *authRequest:
		g := store.OIDCGrant{ID: r.ID, ClientID: r.ClientID, UserID: r.UserID, Created: now,
			Expires: now.Add(s.cfg.RefreshTokenAbsoluteLifetime)}
		data := tokenData{Subject: r.Subject, Scopes: r.Scopes, AuthTime: r.AuthTime, AMR: r.AMR, ACR: r.ACR,
			SID: r.SID, GrantExpires: g.Expires}
		access, refresh, secret, err := s.tokenPair(data, now)
		if err != nil {
			return "", "", time.Time{}, err
		}
		if err := s.createGrant(ctx, g, access, refresh); err != nil {
			return "", "", time.Time{}, err
		}
		s.issued(metrics.TokenAccess, metrics.TokenRefresh)
		return access.ID, secret, access.Expires, nil

	case *refreshRequest:
		// The account is read afresh first: a disabled account gets no
		// more tokens, and a directory outage fails this exchange with a
		// server error before the presented token is used up, so the
		// client can simply retry.
		u, err := s.lookupUser(ctx, r.userID)
		if errors.Is(err, errAccountGone) {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the account is no longer active")
		}
		if err != nil {
			return "", "", time.Time{}, oidc.ErrServerError().WithDescription("the directory is unavailable").WithParent(err)
		}
		r.user = u
		data := r.data
		data.Scopes = r.scopes
		access, refresh, secret, err := s.tokenPair(data, now)
		if err != nil {
			return "", "", time.Time{}, err
		}
		err = s.store.RotateOIDCRefreshToken(ctx, r.tokenID, now, access, refresh)
		switch {
		case errors.Is(err, store.ErrTokenUsed):
			// Two exchanges of one token raced; the loser is a replay.
			s.revokeReplayedRefresh(ctx, r.grantID, r.clientID, r.userID)
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
		case errors.Is(err, store.ErrNotFound):
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token expired or revoked")
		case err != nil:
			return "", "", time.Time{}, err
		}
		s.issued(metrics.TokenAccess, metrics.TokenRefresh)
		return access.ID, secret, access.Expires, nil
	}
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

// tokenPair makes an access token and a refresh token for one grant; the
// refresh token's secret is returned, the store keeps only its digest.
func (s *Storage) tokenPair(data tokenData, now time.Time) (access, refresh store.OIDCToken, secret string, err error) {
	access, err = s.newToken(store.OIDCAccessToken, randomToken(24), data, now,
		minTime(now.Add(s.cfg.AccessTokenLifetime), data.GrantExpires))
	if err != nil {
		return
	}
	secret = randomToken(32)
	refresh, err = s.newToken(store.OIDCRefreshToken, digest(secret), data, now,
		minTime(now.Add(s.cfg.RefreshTokenLifetime), data.GrantExpires))
	return
}

func (s *Storage) newToken(kind, id string, data tokenData, now, expires time.Time) (store.OIDCToken, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return store.OIDCToken{}, err
	}
	return store.OIDCToken{ID: id, Kind: kind, Data: raw, Created: now, Expires: expires}, nil
}

func (s *Storage) createGrant(ctx context.Context, g store.OIDCGrant, tokens ...store.OIDCToken) error {
	err := s.store.CreateOIDCGrant(ctx, g, tokens...)
	if errors.Is(err, store.ErrGrantExists) {
		// The code was replayed while this redemption was under way.
		return oidc.ErrInvalidGrant().WithDescription("authorization code already used")
	}
	return err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// TokenRequestByRefreshToken validates a presented refresh token. A token
// that was already exchanged is a replay: the whole grant is revoked.
func (s *Storage) TokenRequestByRefreshToken(ctx context.Context, refreshToken string) (op.RefreshTokenRequest, error) {
	tok, err := s.store.GetOIDCToken(ctx, digest(refreshToken), s.now())
	if err != nil {
		return nil, err
	}
	if tok.Kind != store.OIDCRefreshToken {
		return nil, errInvalidToken
	}
	if !tok.Used.IsZero() {
		s.revokeReplayedRefresh(ctx, tok.GrantID, tok.ClientID, tok.UserID)
		return nil, errors.New("oidcprovider: refresh token replayed")
	}
	var data tokenData
	if err := json.Unmarshal(tok.Data, &data); err != nil {
		return nil, err
	}
	return &refreshRequest{tokenID: tok.ID, grantID: tok.GrantID, clientID: tok.ClientID, userID: tok.UserID,
		data: data, scopes: data.Scopes}, nil
}

func (s *Storage) revokeReplayedRefresh(ctx context.Context, grantID, clientID, userID string) {
	now := s.now()
	if err := s.store.RevokeOIDCGrant(ctx, grantID, now, now.Add(time.Hour)); err != nil {
		s.log.ErrorContext(ctx, "revoking a replayed refresh token's grant failed", "client_id", clientID, "error", err)
	}
	s.log.WarnContext(ctx, "oidc refresh token replayed; its grant is revoked", "client_id", clientID)
	s.audit(ctx, "oidc_refresh_replayed", userID, map[string]string{"client_id": clientID})
}

// TerminateSession is op's logout hook when no request is at hand; the
// provider's end_session goes through TerminateSessionFromRequest.
func (s *Storage) TerminateSession(ctx context.Context, _, _ string) error {
	return s.app.EndSession(ctx)
}

// TerminateSessionFromRequest ends the browser's IdP session for
// RP-initiated logout and returns where to send the browser. Without an
// id_token_hint that op verified (our signature; an expired one is fine)
// the request could come from any site, so the user is asked first.
func (s *Storage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	if req.IDTokenHintClaims == nil {
		return s.app.ConfirmLogout(ctx, req.RedirectURI, idp.Participant{Protocol: idp.ProtocolOIDC, ID: req.ClientID}), nil
	}
	// Every service of the session is told; the client that asked is
	// sent to its post_logout_redirect_uri once that is done.
	finish := req.RedirectURI
	if base, _, _ := strings.Cut(finish, "?"); base == s.defaultLogout {
		finish = "" // op's default: our own logged-out page
	}
	// The client the verified hint was issued to asked; it is not told.
	return s.app.Logout(ctx, idp.LogoutOptions{Via: "oidc", Finish: finish,
		Initiator: &idp.Participant{Protocol: idp.ProtocolOIDC, ID: req.ClientID}})
}

// GetRefreshTokenInfo identifies a refresh token for revocation.
func (s *Storage) GetRefreshTokenInfo(ctx context.Context, _ string, token string) (string, string, error) {
	tok, err := s.store.GetOIDCToken(ctx, digest(token), s.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && tok.Kind != store.OIDCRefreshToken) {
		return "", "", op.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", err
	}
	return tok.UserID, tok.ID, nil
}

// RevokeToken revokes an access token, or a refresh token with its whole
// grant (RFC 7009: access tokens of the grant go too). Unknown tokens are
// no error; tokens of other clients are refused.
func (s *Storage) RevokeToken(ctx context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	now := s.now()
	tok, err := s.store.GetOIDCToken(ctx, tokenOrID, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if tok.ClientID != clientID {
		return oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client")
	}
	if tok.Kind == store.OIDCRefreshToken {
		err = s.store.RevokeOIDCGrant(ctx, tok.GrantID, now, now.Add(time.Hour))
	} else {
		err = s.store.DeleteOIDCToken(ctx, tok.ID)
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	s.audit(ctx, "oidc_token_revoked", tok.UserID, map[string]string{"client_id": clientID, "kind": tok.Kind})
	return nil
}

// SigningKey returns the key that signs now for the client whose token
// request is being answered: op asks with the request's context only, so
// the token endpoint puts the client's algorithm there (withSigningAlg);
// without it the default algorithm's key signs.
func (s *Storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	alg, _ := ctx.Value(signingAlgKey{}).(jose.SignatureAlgorithm)
	return s.keys.signingKey(ctx, alg)
}

// signingAlgKey is the context key of the algorithm a token request's
// client gets its tokens signed with.
type signingAlgKey struct{}

// withSigningAlg makes SigningKey pick alg's key for the tokens of ctx's
// request.
func withSigningAlg(ctx context.Context, alg jose.SignatureAlgorithm) context.Context {
	return context.WithValue(ctx, signingAlgKey{}, alg)
}

// SignatureAlgorithms lists the algorithms tokens are signed with.
func (s *Storage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return s.keys.algorithms(ctx)
}

// KeySet returns the published verification keys.
func (s *Storage) KeySet(ctx context.Context) ([]op.Key, error) {
	return s.keys.keySet(ctx)
}

// GetClientByClientID returns a registered client.
func (s *Storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	return s.client(clientID)
}

// AuthorizeClientIDSecret checks a confidential client's secret.
func (s *Storage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	c, err := s.client(clientID)
	if err != nil {
		return err
	}
	if !c.confidential() || !c.secret.check(clientSecret) {
		return errBadSecret
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest fills
// ID tokens instead.
func (s *Storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills an ID token's subject and claims: from the
// login for a code, from a fresh directory lookup for a refresh.
func (s *Storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, request op.IDTokenRequest, scopes []string) error {
	switch r := request.(type) {
	case *authRequest:
		s.claims.fill(info, r.Subject, r.User, scopes)
		// op's ID token has a sid field but never sets it; the claim goes
		// in here (Back-/Front-Channel Logout 1.0).
		if r.SID != "" {
			info.AppendClaims("sid", r.SID)
		}
	case *refreshRequest:
		if r.user == nil {
			return errors.New("oidcprovider: refresh without a fresh account lookup")
		}
		s.claims.fill(info, r.data.Subject, r.user, scopes)
		// op sets acr only for authorization requests; a refreshed ID
		// token states the assurance of the original login too.
		if r.data.ACR != "" {
			info.AppendClaims("acr", r.data.ACR)
		}
		if r.data.SID != "" {
			info.AppendClaims("sid", r.data.SID)
		}
	default:
		return fmt.Errorf("oidcprovider: no claims for %T", request)
	}
	return nil
}

// SetUserinfoFromToken answers userinfo for an access token.
func (s *Storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	return s.userinfo(ctx, info, tokenID)
}

// userinfo fills info for an access token of a user, reading the account
// afresh. errInvalidToken (wrapped) means the token does not entitle to
// claims; other errors are outages.
func (s *Storage) userinfo(ctx context.Context, info *oidc.UserInfo, tokenID string) error {
	tok, data, err := s.accessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	if tok.UserID == "" {
		return fmt.Errorf("%w: %w", errInvalidToken, errNotAccess)
	}
	u, err := s.lookupUser(ctx, tok.UserID)
	if errors.Is(err, errAccountGone) {
		return fmt.Errorf("%w: %w", errInvalidToken, err)
	}
	if err != nil {
		return err
	}
	s.claims.fill(info, data.Subject, u, data.Scopes)
	return nil
}

// accessToken returns a live access token and its data.
func (s *Storage) accessToken(ctx context.Context, tokenID string) (*store.OIDCToken, *tokenData, error) {
	tok, err := s.store.GetOIDCToken(ctx, tokenID, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errInvalidToken
	}
	if err != nil {
		return nil, nil, err
	}
	if tok.Kind != store.OIDCAccessToken {
		return nil, nil, errInvalidToken
	}
	var data tokenData
	if err := json.Unmarshal(tok.Data, &data); err != nil {
		return nil, nil, err
	}
	return tok, &data, nil
}

// lookupUser reads an account from the directory; errAccountGone if it is
// disabled or no longer there.
func (s *Storage) lookupUser(ctx context.Context, id string) (*user, error) {
	u, err := s.dir.Lookup(ctx, id)
	if errors.Is(err, ldapstore.ErrUserNotFound) {
		return nil, errAccountGone
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, errAccountGone
	}
	return userFromDirectory(u), nil
}

// SetIntrospectionFromToken describes an access token to the client it was
// issued to. Other clients learn only that it is not active for them.
func (s *Storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	tok, data, err := s.accessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	if tok.ClientID != clientID {
		return errInvalidToken
	}
	resp.Scope = data.Scopes
	resp.ClientID = tok.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(tok.Expires)
	resp.IssuedAt = oidc.FromTime(tok.Created)
	resp.Subject = data.Subject
	resp.Audience = []string{tok.ClientID}
	resp.Issuer = op.IssuerFromContext(ctx)
	if !data.AuthTime.IsZero() {
		resp.AuthTime = oidc.FromTime(data.AuthTime)
	}
	resp.AuthenticationMethodsReferences = data.AMR
	if tok.UserID != "" && slices.Contains(data.Scopes, oidc.ScopeProfile) {
		resp.Username = tok.UserID
	}
	return nil
}

// GetPrivateClaimsFromScopes adds the scope to JWT access tokens.
func (s *Storage) GetPrivateClaimsFromScopes(_ context.Context, _, _ string, scopes []string) (map[string]any, error) {
	return map[string]any{"scope": strings.Join(scopes, " ")}, nil
}

// GetPrivateClaimsFromRequest adds the scope and, for users, the
// assurance of the login to JWT access tokens.
func (s *Storage) GetPrivateClaimsFromRequest(_ context.Context, request op.TokenRequest, scopes []string) (map[string]any, error) {
	claims := map[string]any{"scope": strings.Join(request.GetScopes(), " ")}
	switch r := request.(type) {
	case *authRequest:
		claims["acr"], claims["amr"], claims["auth_time"] = r.ACR, r.AMR, r.AuthTime.Unix()
	case *refreshRequest:
		claims["acr"], claims["amr"], claims["auth_time"] = r.data.ACR, r.data.AMR, r.data.AuthTime.Unix()
	}
	return claims, nil
}

// GetKeyByIDAndClientID would serve private_key_jwt client authentication
// and the JWT profile grant, which this provider does not offer.
func (s *Storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrInvalidClient().WithDescription("private_key_jwt is not supported")
}

// ValidateJWTProfileScopes belongs to the JWT profile grant, which this
// provider does not offer.
func (s *Storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("the JWT profile grant is not supported")
}

// ClientCredentials authenticates a client for the client_credentials grant.
func (s *Storage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, clientID, clientSecret); err != nil {
		return nil, err
	}
	return s.client(clientID)
}

// ClientCredentialsTokenRequest grants the requested scopes the client is
// allowed, except the user scopes openid and offline_access.
func (s *Storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(clientID)
	if err != nil {
		return nil, err
	}
	var granted []string
	for _, sc := range scopes {
		if sc != oidc.ScopeOpenID && sc != oidc.ScopeOfflineAccess && c.IsScopeAllowed(sc) && !slices.Contains(granted, sc) {
			granted = append(granted, sc)
		}
	}
	return &clientCredentialsRequest{clientID: clientID, scopes: granted}, nil
}

// Health reports whether the store answers.
func (s *Storage) Health(ctx context.Context) error { return s.store.Ping(ctx) }

// issued counts issued tokens in the app's metrics.
func (s *Storage) issued(kinds ...string) {
	if s.app == nil {
		return
	}
	for _, k := range kinds {
		s.app.Metrics().TokenIssued(k)
	}
}

func (s *Storage) audit(ctx context.Context, typ, subject string, detail map[string]string) {
	if s.app != nil {
		s.app.Audit(ctx, typ, subject, detail)
	}
}
