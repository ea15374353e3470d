// Package devldap is a small read-only LDAP server holding a demo directory,
// so `idp dev` runs without any other server. It speaks enough LDAP for the
// IdP's directory client: simple bind, search with filters, attribute
// selection, size limits and paging, and the root DSE.
//
// It is not a directory for production: data is fixed at build time and
// there is no TLS.
package devldap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
)

// startTimeout bounds how long Start waits for the LDAP engine to come up.
const startTimeout = 10 * time.Second

// Server is a running dev LDAP server.
//
// gldap (the LDAP engine) picks its own listener, cannot report the port it
// got and, when stopped, waits for idle clients to hang up. So the engine
// listens on a private loopback port and Server owns the public listener,
// relaying each client connection to it. That lets Server report its real
// address and end every connection on Close, even those a client pool
// keeps open.
type Server struct {
	logger  *slog.Logger
	handler *handler
	ln      net.Listener

	engine     *gldap.Server
	engineAddr string
	engineDone chan error

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	stopWatch func() bool
	closeOnce sync.Once
	closeErr  error
}

// Start serves the demo directory on addr ("127.0.0.1:0" or "" picks a free
// loopback port) until Close is called or ctx is done.
func Start(ctx context.Context, addr string, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	dir, err := parseLDIF(demoLDIF, BaseDN)
	if err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("devldap: %w", err)
	}
	h, err := newHandler(dir, logger, "devldapProbe"+hex.EncodeToString(token))
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devldap: listen on %s: %w", addr, err)
	}
	s := &Server{logger: logger, handler: h, ln: ln, conns: map[net.Conn]struct{}{}}
	if err := s.startEngine(ctx); err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.acceptLoop()
	s.stopWatch = context.AfterFunc(ctx, func() { _ = s.Close() })
	logger.Info("dev LDAP server listening", "url", s.URL(), "base_dn", BaseDN)
	return s, nil
}

// URL is the ldap:// URL clients connect to.
func (s *Server) URL() string { return "ldap://" + s.ln.Addr().String() }

// Close stops listening, ends every client connection and stops the engine.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stopWatch != nil {
			s.stopWatch()
		}
		s.mu.Lock()
		s.closed = true
		conns := make([]net.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()

		lnErr := s.ln.Close()
		for _, c := range conns {
			_ = c.Close()
		}
		s.wg.Wait()
		// Every engine connection is closed now, so Stop cannot hang.
		stopErr := s.engine.Stop()
		runErr := <-s.engineDone
		s.closeErr = errors.Join(lnErr, stopErr, runErr)
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("devldap: close: %w", s.closeErr)
		}
		s.logger.Info("dev LDAP server stopped", "url", s.URL())
	})
	return s.closeErr
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			s.logger.Warn("dev LDAP accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go s.relay(c)
	}
}

// track registers a connection so Close can end it; false once closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// relay copies bytes between a client and its own engine connection, so
// the engine sees one connection per client and bind state stays per client.
func (s *Server) relay(client net.Conn) {
	defer s.wg.Done()
	defer client.Close()
	if !s.track(client) {
		return
	}
	defer s.untrack(client)

	engine, err := net.DialTimeout("tcp", s.engineAddr, 5*time.Second)
	if err != nil {
		s.logger.Warn("dev LDAP engine unreachable", "err", err)
		return
	}
	defer engine.Close()
	if !s.track(engine) {
		return
	}
	defer s.untrack(engine)

	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(engine, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, engine); done <- struct{}{} }()
	<-done
	// LDAP has no use for half-closed connections: when one side ends,
	// end both, which also unblocks the other copy.
	_ = client.Close()
	_ = engine.Close()
	<-done
}

// startEngine runs gldap on a free loopback port. gldap cannot listen on a
// port chosen by the kernel and tell us which, so we reserve one, release
// it and hand it to gldap; if another process grabs it in between, gldap
// fails to listen and we try another.
func (s *Server) startEngine(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var lastErr error
	for range 5 {
		addr, err := freeLoopbackAddr(ctx)
		if err != nil {
			return err
		}
		mux, err := s.handler.mux()
		if err != nil {
			return fmt.Errorf("devldap: %w", err)
		}
		engine, err := gldap.NewServer(
			gldap.WithLogger(newHCLogger(s.logger)),
			gldap.WithOnClose(s.handler.forget),
		)
		if err != nil {
			return fmt.Errorf("devldap: %w", err)
		}
		if err := engine.Router(mux); err != nil {
			return fmt.Errorf("devldap: %w", err)
		}
		done := make(chan error, 1)
		go func() { done <- engine.Run(addr) }()

		runExited, err := s.awaitEngine(ctx, addr, done)
		if err == nil {
			s.engine, s.engineAddr, s.engineDone = engine, addr, done
			return nil
		}
		_ = engine.Stop()
		if !runExited {
			<-done
		}
		if ctx.Err() != nil {
			return fmt.Errorf("devldap: engine did not start: %w", err)
		}
		lastErr = err
	}
	return fmt.Errorf("devldap: engine did not start: %w", lastErr)
}

// awaitEngine waits until a probe reaches this server's handler through
// addr, or gldap's Run gives up.
func (s *Server) awaitEngine(ctx context.Context, addr string, done <-chan error) (runExited bool, err error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("engine stopped")
			}
			return true, err
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
			if s.probe(ctx, addr) {
				return false, nil
			}
		}
	}
}

func (s *Server) probe(ctx context.Context, addr string) bool {
	d := &net.Dialer{Timeout: time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn := ldap.NewConn(nc, false)
	conn.Start()
	defer conn.Close()
	conn.SetTimeout(time.Second)
	_, err = conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{s.handler.probeToken}, nil))
	return err == nil && s.handler.probeSeen.Load()
}

func freeLoopbackAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("devldap: reserve a loopback port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("devldap: reserve a loopback port: %w", err)
	}
	return addr, nil
}

// newHCLogger bridges gldap's hclog output into slog. The level stays at
// Warn: at Debug gldap dumps whole packets, bind passwords included.
func newHCLogger(logger *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "gldap",
		Level:       hclog.Warn,
		Output:      slogWriter{logger},
		DisableTime: true,
	})
}

type slogWriter struct{ logger *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	if strings.Contains(line, "[ERROR]") {
		level = slog.LevelWarn
	}
	w.logger.Log(context.Background(), level, "gldap", "detail", line)
	return len(p), nil
}
