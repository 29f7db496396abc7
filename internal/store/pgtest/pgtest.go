// Package pgtest gives each test its own PostgreSQL database.
//
// Once per test process a template database is created and migrated with the
// store's migrations; every NewDSN call then clones it with CREATE DATABASE
// ... TEMPLATE (milliseconds, versus re-running migrations) and drops the
// clone in t.Cleanup.
//
// Server: FABRIC_TEST_POSTGRES_DSN, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (the role must
// be allowed to create databases). If the server is unreachable the test is
// skipped, or fails when FABRIC_REQUIRE_POSTGRES=1.
//
// Cleanup: databases are named fabric_tpl_<owner> and fabric_tst_<owner>_<n>,
// where <owner> is a random id whose session advisory lock the process holds
// for its whole life. Each process, on first use, drops every such database
// whose owner lock is free, i.e. whose process has exited (or crashed).
// [Main] additionally drops the process's own databases when the tests end.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decision-fabric/fabric/internal/store"
)

// Environment variables and the default server.
const (
	EnvDSN     = "FABRIC_TEST_POSTGRES_DSN"
	EnvRequire = "FABRIC_REQUIRE_POSTGRES"
	DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// lockSpace is the first key of the two-int4 advisory locks that mark live owners.
const lockSpace int32 = 0x46414252 // "FABR"

var dbNameRE = regexp.MustCompile(`^fabric_(?:tpl|tst)_([0-9]+)(?:_[0-9]+)?$`)

// NewDSN returns the DSN of a new database holding the current store schema
// (and no rows), dropped when t ends.
func NewDSN(t testing.TB) string {
	t.Helper()
	s := get(t)
	tpl, err := s.template()
	if err != nil {
		t.Fatalf("pgtest: template database: %v", err)
	}
	return s.newDB(t, tpl)
}

// NewEmptyDSN returns the DSN of a new, empty database (no store schema),
// dropped when t ends.
func NewEmptyDSN(t testing.TB) string {
	t.Helper()
	return get(t).newDB(t, "")
}

// Main runs the tests and then drops this process's databases. Use it as
// the body of TestMain in packages that use pgtest; without it the databases
// are dropped by the next process that uses pgtest.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown drops this process's databases: for a TestMain that does more than [Main]
// around m.Run.
func Shutdown() {
	if s := current.Load(); s != nil {
		s.shutdown()
	}
}

type server struct {
	base  string
	admin *pgxpool.Pool // CREATE/DROP DATABASE
	lock  *pgx.Conn     // holds the owner lock for the life of the process
	owner int32
	seq   atomic.Int64

	tplOnce sync.Once
	tpl     string
	tplErr  error
}

var (
	connectOnce sync.Once
	connectErr  error
	current     atomic.Pointer[server]
)

func get(t testing.TB) *server {
	t.Helper()
	connectOnce.Do(func() {
		var s *server
		if s, connectErr = connect(); connectErr == nil {
			current.Store(s)
		}
	})
	if connectErr != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("pgtest: %v (%s=1)", connectErr, EnvRequire)
		}
		t.Skipf("pgtest: skipping: %v; set %s to a reachable server, or %s=1 to fail instead",
			connectErr, EnvDSN, EnvRequire)
	}
	return current.Load()
}

func connect() (*server, error) {
	base := os.Getenv(EnvDSN)
	if base == "" {
		base = DefaultDSN
	}
	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		return nil, fmt.Errorf("invalid %s: %w", EnvDSN, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	lockConn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres not reachable at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s := &server{base: base, lock: lockConn}
	for s.owner == 0 {
		owner := rand.Int32N(1<<31-1) + 1
		var ok bool
		if err := lockConn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", lockSpace, owner).Scan(&ok); err != nil {
			lockConn.Close(ctx)
			return nil, fmt.Errorf("owner lock: %w", err)
		}
		if ok {
			s.owner = owner
		}
	}
	cfg.MaxConns = 4
	if s.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		lockConn.Close(ctx)
		return nil, err
	}
	if err := s.sweep(ctx); err != nil {
		s.shutdown()
		return nil, fmt.Errorf("dropping stale test databases: %w", err)
	}
	return s, nil
}

// sweep drops the databases of owners that no longer hold their lock.
func (s *server) sweep(ctx context.Context) error {
	rs, err := s.admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'fabric\_t%'`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return err
	}
	byOwner := map[int32][]string{}
	for _, name := range names {
		m := dbNameRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		owner, err := strconv.ParseInt(m[1], 10, 32)
		if err != nil || int32(owner) == s.owner {
			continue
		}
		byOwner[int32(owner)] = append(byOwner[int32(owner)], name)
	}
	for owner, dbs := range byOwner {
		var free bool
		if err := s.lock.QueryRow(ctx, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", lockSpace, owner).Scan(&free); err != nil {
			return err
		}
		if !free {
			continue // its process is alive
		}
		for _, db := range dbs {
			if err := s.drop(ctx, db); err != nil {
				return err
			}
		}
		if _, err := s.lock.Exec(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", lockSpace, owner); err != nil {
			return err
		}
	}
	return nil
}

// template creates and migrates the process's template database, once.
func (s *server) template() (string, error) {
	s.tplOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		name := fmt.Sprintf("fabric_tpl_%d", s.owner)
		if s.tplErr = s.create(ctx, name, ""); s.tplErr != nil {
			return
		}
		st, err := store.Open(ctx, store.Config{PostgresDSN: DSNFor(s.base, name)})
		if err != nil {
			s.tplErr = err
			return
		}
		// Closing waits for the pool's connections; a template must have none.
		s.tplErr, s.tpl = st.Close(), name
	})
	return s.tpl, s.tplErr
}

func (s *server) newDB(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("fabric_tst_%d_%d", s.owner, s.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.create(ctx, name, template); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.drop(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return DSNFor(s.base, name)
}

func (s *server) create(ctx context.Context, name, template string) error {
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	for attempt := 1; ; attempt++ {
		_, err := s.admin.Exec(ctx, q)
		var pe *pgconn.PgError
		// 55006: the template still has a session (e.g. one just closed); retry briefly.
		if err == nil || !errors.As(err, &pe) || pe.Code != "55006" || attempt == 10 {
			if err != nil {
				return fmt.Errorf("create database %s: %w", name, err)
			}
			return nil
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

func (s *server) drop(ctx context.Context, name string) error {
	_, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// shutdown drops the process's remaining databases and releases the owner lock.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s.admin != nil {
		rs, err := s.admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'fabric\_t%'`)
		if err == nil {
			names, _ := pgx.CollectRows(rs, pgx.RowTo[string])
			for _, name := range names {
				if m := dbNameRE.FindStringSubmatch(name); m != nil && m[1] == strconv.Itoa(int(s.owner)) {
					_ = s.drop(ctx, name)
				}
			}
		}
		s.admin.Close()
	}
	_ = s.lock.Close(ctx)
}

// DSNFor returns base with its database name replaced by db. base may be a
// URL (postgres://...) or a keyword/value string (host=... dbname=...).
func DSNFor(base, db string) string {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		if u, err := url.Parse(base); err == nil {
			u.Path, u.RawPath = "/"+db, ""
			return u.String()
		}
	}
	return base + " dbname='" + db + "'" // a later keyword overrides an earlier one
}
