package auditlog_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// db is a store with raw SQL access to its database, for tampering.
type db struct {
	backend string
	st      store.Store
	cfg     store.Config
	exec    func(t *testing.T, q string, args ...any)
}

// eachBackend runs fn against a fresh SQLite and a fresh Postgres store.
func eachBackend(t *testing.T, fn func(t *testing.T, d *db)) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			fn(t, openDB(t, backend))
		})
	}
}

func openDB(t *testing.T, backend string) *db {
	t.Helper()
	cfg := store.Config{DataDir: filepath.Join(t.TempDir(), "data")}
	if backend == store.BackendPostgres {
		cfg = store.Config{PostgresDSN: pgtest.NewDSN(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	d := &db{backend: backend, st: st, cfg: cfg}
	if backend == store.BackendPostgres {
		conn, err := pgx.Connect(context.Background(), cfg.PostgresDSN)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		d.exec = func(t *testing.T, q string, args ...any) {
			t.Helper()
			_, err := conn.Exec(context.Background(), q, args...)
			require.NoError(t, err, q)
		}
	} else {
		raw, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, store.SQLiteFileName)+"?_pragma=busy_timeout(5000)")
		require.NoError(t, err)
		raw.SetMaxOpenConns(1)
		t.Cleanup(func() { raw.Close() })
		d.exec = func(t *testing.T, q string, args ...any) {
			t.Helper()
			_, err := raw.ExecContext(context.Background(), q, args...)
			require.NoError(t, err, q)
		}
	}
	return d
}

// Trigger DDL as in migrations 00004, to drop and restore around tampering.
var (
	sqliteTriggers = map[string]string{
		"audit_entries_no_update":     `CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_entries refused'); END`,
		"audit_entries_no_delete":     `CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_entries refused'); END`,
		"audit_checkpoints_no_update": `CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_checkpoints refused'); END`,
		"audit_checkpoints_no_delete": `CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_checkpoints refused'); END`,
	}
	pgTriggers = map[string]string{
		"audit_entries_append_only ON audit_entries":         `CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()`,
		"audit_checkpoints_append_only ON audit_checkpoints": `CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()`,
	}
)

// tamper runs statements ($N placeholders) with the append-only triggers
// dropped, then restores them, as an attacker with database access would.
func (d *db) tamper(t *testing.T, stmts ...func(exec func(q string, args ...any))) {
	t.Helper()
	triggers := sqliteTriggers
	if d.backend == store.BackendPostgres {
		triggers = pgTriggers
	}
	for name := range triggers {
		d.exec(t, "DROP TRIGGER "+name)
	}
	for _, s := range stmts {
		s(func(q string, args ...any) { d.exec(t, q, args...) })
	}
	for _, ddl := range triggers {
		d.exec(t, ddl)
	}
}

var testKeys = func() *auditlog.Keys {
	k, err := auditlog.GenerateKeys()
	if err != nil {
		panic(err)
	}
	return k
}()

func newLog(t *testing.T, st store.Store, opts ...func(*auditlog.Options)) *auditlog.Log {
	t.Helper()
	o := auditlog.Options{Store: st, Keys: testKeys}
	for _, f := range opts {
		f(&o)
	}
	l, err := auditlog.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l
}

func event(tenant, proposal, name string, n int) auditlog.Event {
	return auditlog.Event{
		TenantID: tenant, ProposalID: proposal, Event: name, Actor: "svc:coordinator",
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Payload: map[string]any{"n": n, "status": "ok"},
	}
}

func mustAppend(t *testing.T, l *auditlog.Log, e auditlog.Event) *store.AuditEntry {
	t.Helper()
	got, created, err := l.Append(t.Context(), e)
	require.NoError(t, err)
	require.True(t, created)
	return got
}

// appendN appends n events to tenant's log for proposals p0, p1, p2 in turn.
func appendN(t *testing.T, l *auditlog.Log, tenant string, n int) []*store.AuditEntry {
	t.Helper()
	out := make([]*store.AuditEntry, n)
	for i := range out {
		out[i] = mustAppend(t, l, event(tenant, fmt.Sprintf("p%d", i%3), auditlog.EventProposalSubmitted, i))
	}
	return out
}

// rewriteFrom5 is the tampering of a database user who changes entry 5's actor and
// rebuilds the hash chain from there to entry 9 (the log of ten entries the tamper
// tests build), so the chain alone still verifies.
func rewriteFrom5(t *testing.T, d *db) []func(exec) {
	t.Helper()
	var fixes []func(exec)
	prev := entry(t, d, 4).EntryHash
	for i := int64(5); i < 10; i++ {
		e := entry(t, d, i)
		if i == 5 {
			e.Actor = "mallory"
		}
		e.PrevHash = prev
		rehash(t, e)
		prev = e.EntryHash
		fixes = append(fixes, func(x exec) {
			x(`UPDATE audit_entries SET actor = $1, prev_hash = $2, entry_hash = $3 WHERE tenant_id = 't' AND idx = $4`,
				e.Actor, e.PrevHash, e.EntryHash, e.Index)
		})
	}
	return fixes
}
