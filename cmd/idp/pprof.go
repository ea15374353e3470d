package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// pprofEnv names the environment variable that opens Go's profiling
// endpoints (/debug/pprof/) on a loopback address, e.g.
// IDP_PPROF_LISTEN=127.0.0.1:6060. Unset means off. It is an environment
// variable rather than a config key because it is a diagnostic switch for
// one run (the benchmark), never a setting to deploy.
const pprofEnv = "IDP_PPROF_LISTEN"

// startProfiling serves the pprof handlers on addr, which must be a
// loopback address: profiles reveal memory contents. An empty addr does
// nothing. The returned stop closes the listener.
func startProfiling(addr string, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	if err := checkLoopback(addr); err != nil {
		return nil, fmt.Errorf("%s: %w", pprofEnv, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pprofEnv, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof listener stopped", "error", err)
		}
	}()
	logger.Warn("profiling endpoints open (diagnostics only)", "addr", ln.Addr().String(), "env", pprofEnv)
	return func() { _ = srv.Close() }, nil
}

var errNotLoopback = errors.New("the profiling listener must be on a loopback address such as 127.0.0.1:6060")

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return errNotLoopback
	}
	return nil
}
