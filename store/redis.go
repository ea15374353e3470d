package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
)

// RedisConfig locates the Redis server that holds browser sessions.
type RedisConfig struct {
	Address  string // host:port
	Username string // ACL user; "" for the default user
	Password string
	DB       int
	TLS      bool
	// KeyPrefix starts every key written; "" means "idp:".
	KeyPrefix string
	// Timeout bounds connecting and each command; 0 means 3s.
	Timeout time.Duration
	// SessionLifetime is the longest a session can live (the absolute
	// timeout); a user's list of sessions is kept that long after the last
	// login. 0 means 24h.
	SessionLifetime time.Duration
}

// RedisSessions keeps scs sessions in Redis (through scs's redisstore) and
// remembers which sessions belong to which user, so that all sessions of a
// user can be ended. It is safe for concurrent use.
//
// Redis cannot join a request's unit of work (DB.BeginUnit): sessions and
// bindings here are written at once, not with the request's SQL changes;
// see the package documentation for what that means when a commit fails.
type RedisSessions struct {
	*redisstore.RedisStore
	pool       *redis.Pool
	sessionKey string // prefix of session keys
	userKey    string // prefix of the per-user sets of session tokens
	// heartbeatKey is written by readiness probes.
	heartbeatKey string
	lifetime     time.Duration
	logger       *slog.Logger
}

var (
	_ scs.Store         = (*RedisSessions)(nil)
	_ scs.IterableStore = (*RedisSessions)(nil)
)

// OpenRedisSessions connects to Redis and checks that it answers.
func OpenRedisSessions(ctx context.Context, cfg RedisConfig, logger *slog.Logger) (*RedisSessions, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Address == "" {
		return nil, errors.New("store: open redis: empty address")
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "idp:"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 24 * time.Hour
	}
	opts := []redis.DialOption{
		redis.DialConnectTimeout(cfg.Timeout),
		redis.DialReadTimeout(cfg.Timeout),
		redis.DialWriteTimeout(cfg.Timeout),
		redis.DialDatabase(cfg.DB),
		redis.DialUseTLS(cfg.TLS),
	}
	if cfg.Username != "" {
		opts = append(opts, redis.DialUsername(cfg.Username))
	}
	if cfg.Password != "" {
		opts = append(opts, redis.DialPassword(cfg.Password))
	}
	pool := &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", cfg.Address, opts...)
		},
		// An idle connection may have been cut by a firewall or a Redis
		// restart; check it before handing it out again.
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, lastUsed time.Time) error {
			if time.Since(lastUsed) < time.Minute {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
		MaxIdle:     16,
		MaxActive:   128,
		IdleTimeout: 4 * time.Minute,
		// Callers wait for a free connection rather than fail at the limit.
		Wait: true,
	}
	s := &RedisSessions{
		RedisStore:   redisstore.NewWithPrefix(pool, cfg.KeyPrefix+"session:"),
		pool:         pool,
		sessionKey:   cfg.KeyPrefix + "session:",
		userKey:      cfg.KeyPrefix + "user-sessions:",
		heartbeatKey: cfg.KeyPrefix + "heartbeat",
		lifetime:     cfg.SessionLifetime,
		logger:       logger,
	}
	if err := s.Ping(ctx); err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("store: open redis %s: %w", cfg.Address, err)
	}
	return s, nil
}

func (s *RedisSessions) do(ctx context.Context, cmd string, args ...any) (any, error) {
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return redis.DoContext(c, ctx, cmd, args...)
}

// Ping checks that Redis answers, for readiness probes.
func (s *RedisSessions) Ping(ctx context.Context) error {
	if _, err := s.do(ctx, "PING"); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}

// Ready checks that Redis takes a write (a read-only replica, or a server
// that cannot persist, refuses it), for readiness probes.
func (s *RedisSessions) Ready(ctx context.Context) error {
	if _, err := s.do(ctx, "SET", s.heartbeatKey, time.Now().Unix(), "EX", 60); err != nil {
		return fmt.Errorf("%w: redis write: %w", ErrUnavailable, err)
	}
	return nil
}

// Close closes the connection pool.
func (s *RedisSessions) Close() error { return s.pool.Close() }

// BindSessionUser records that session token belongs to userID, as
// DB.BindSessionUser does for sessions kept in the database.
func (s *RedisSessions) BindSessionUser(ctx context.Context, token, userID string) error {
	if token == "" || userID == "" {
		return errors.New("store: bind session user: empty token or user")
	}
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("store: bind session user: %w", err)
	}
	defer c.Close()
	key := s.userKey + userID
	// One round trip, applied together: the set never outlives the newest
	// session it lists by more than a session's lifetime.
	for _, cmd := range [][]any{{"MULTI"}, {"SADD", key, token}, {"PEXPIRE", key, s.lifetime.Milliseconds()}} {
		if err := c.Send(cmd[0].(string), cmd[1:]...); err != nil {
			return fmt.Errorf("store: bind session user: %w", err)
		}
	}
	if _, err := redis.DoContext(c, ctx, "EXEC"); err != nil {
		return fmt.Errorf("store: bind session user: %w", err)
	}
	return nil
}

// endUserSessions deletes, in one atomic step, every session listed for the
// user except one, removes them from the list, and returns how many
// sessions still existed (Redis drops expired keys by itself).
var endUserSessions = redis.NewScript(1, `
local ended = 0
for _, token in ipairs(redis.call('SMEMBERS', KEYS[1])) do
	if token ~= ARGV[1] then
		ended = ended + redis.call('DEL', ARGV[2] .. token)
		redis.call('SREM', KEYS[1], token)
	end
end
return ended`)

// DeleteUserSessions ends every session bound to userID except exceptToken
// ("" ends them all) and returns how many live sessions ended.
func (s *RedisSessions) DeleteUserSessions(ctx context.Context, userID, exceptToken string) (int, error) {
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: delete user sessions: %w", err)
	}
	defer c.Close()
	n, err := redis.Int(endUserSessions.DoContext(ctx, c, s.userKey+userID, exceptToken, s.sessionKey))
	if err != nil {
		return 0, fmt.Errorf("store: delete user sessions: %w", err)
	}
	return n, nil
}
