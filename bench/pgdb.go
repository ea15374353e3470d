package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/campusidp/campusidp/internal/testpg"
)

// pgDatabase is a database of the run's own on the machine's PostgreSQL
// server (the one the tests use, 127.0.0.1:5432 unless IDP_TEST_POSTGRES
// says otherwise), created empty before the IdP starts and dropped after.
// The server itself is never started or stopped by the bench.
type pgDatabase struct {
	admin *sql.DB
	name  string
	// DSN is the connection string the IdP under test gets.
	DSN string
	// ServerPID is the postmaster: its CPU, its reaped children's and its
	// live children's is the server's CPU (see treeCPU).
	ServerPID int
}

// createPGDatabase creates a fresh database on the test server. It refuses
// a server that is not on a loopback address: the bench measures one
// machine, and its load must not land on a shared server.
func createPGDatabase(ctx context.Context) (*pgDatabase, error) {
	serverDSN := testpg.ServerDSN()
	cfg, err := pgx.ParseConfig(serverDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres server DSN: %w", err)
	}
	if ip := net.ParseIP(cfg.Host); cfg.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("postgres server %s is not on a loopback address", cfg.Host)
	}
	cfg.ConnectTimeout = 5 * time.Second
	admin := stdlib.OpenDB(*cfg)
	admin.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var backend int
	if err := admin.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("postgres at %s:%d (the tests' server; IDP_TEST_POSTGRES overrides): %w", cfg.Host, cfg.Port, err)
	}
	server, err := parentPID(backend)
	if err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("postgres backend %d: %w (is the server on this machine?)", backend, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "idp_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("create database: %w", err)
	}
	return &pgDatabase{admin: admin, name: name, DSN: withDatabase(serverDSN, name), ServerPID: server}, nil
}

// Close drops the database (after the IdP has stopped; FORCE ends any
// connection left over) and closes the admin connection.
func (d *pgDatabase) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := d.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
	return errors.Join(err, d.admin.Close())
}

// withDatabase returns dsn naming database db instead.
func withDatabase(dsn, db string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	return strings.TrimSpace(dsn) + " dbname=" + db
}

// parentPID reads PPid from /proc/PID/status.
func parentPID(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no PPid", pid)
}
