package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestProfilingListenerOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr error
	}{
		{"127.0.0.1:0", nil},
		{"[::1]:0", nil},
		{"localhost:0", nil},
		{":6060", errNotLoopback},
		{"0.0.0.0:6060", errNotLoopback},
		{"192.0.2.1:6060", errNotLoopback},
		{"example.org:6060", errNotLoopback},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if err := checkLoopback(tt.addr); !errors.Is(err, tt.wantErr) {
				t.Fatalf("checkLoopback(%q) = %v, want %v", tt.addr, err, tt.wantErr)
			}
		})
	}
	if _, err := startProfiling("0.0.0.0:0", slog.New(slog.DiscardHandler)); !errors.Is(err, errNotLoopback) {
		t.Fatalf("startProfiling on a public address: err = %v", err)
	}
}

func TestProfilingListenerServesPprof(t *testing.T) {
	stop, err := startProfiling("", slog.New(slog.DiscardHandler))
	if err != nil || stop == nil {
		t.Fatalf("empty address: stop is nil: %v, err = %v", stop == nil, err)
	}
	stop()

	// Find a free port, then let startProfiling bind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err = startProfiling(addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d\n%s", resp.StatusCode, body)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("the listener still answers after stop")
	}
}
