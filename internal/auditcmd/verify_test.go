package auditcmd_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditcmd"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/internal/witness"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a store with an audit log of tenant t1 written by an auditor
// publishing to the default checkpoint file, the public keys in
// <data>/keys, and raw SQL access for tampering with the triggers dropped.
type fixture struct {
	data, dsn string
	keys      *auditlog.Keys
	st        store.Store
	log       *auditlog.Log
	tamper    func(t *testing.T, stmts ...string)
}

func (f *fixture) args(more ...string) []string {
	return append([]string{"-data-dir", f.data, "-postgres-dsn", f.dsn}, more...)
}

func (f *fixture) verify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := auditcmd.Verify(t.Context(), f.args(args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func (f *fixture) append(t *testing.T, n int) *auditlog.Checkpoint {
	t.Helper()
	for i := range n {
		_, _, err := f.log.Append(t.Context(), auditlog.Event{TenantID: "t1", ProposalID: fmt.Sprintf("p%d", i), Event: auditlog.EventProposalScored,
			Payload: map[string]any{"i": i}})
		require.NoError(t, err)
	}
	c, err := f.log.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	return c
}

func eachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			f := &fixture{data: filepath.Join(t.TempDir(), "data")}
			var err error
			f.keys, err = auditlog.GenerateKeys()
			require.NoError(t, err)
			require.NoError(t, f.keys.WriteFiles(filepath.Join(f.data, "keys")))
			if backend == store.BackendPostgres {
				f.dsn = pgtest.NewDSN(t)
			}
			f.st, err = store.Open(context.Background(), store.Config{DataDir: f.data, PostgresDSN: f.dsn})
			require.NoError(t, err)
			t.Cleanup(func() { f.st.Close() })
			f.log, err = auditlog.New(auditlog.Options{Store: f.st, Keys: f.keys, CheckpointEvery: 1 << 20, CheckpointInterval: time.Hour,
				CheckpointFile: filepath.Join(f.data, auditcmd.DefaultCheckpointFile)})
			require.NoError(t, err)
			t.Cleanup(func() { f.log.Close() })
			triggers := []string{"audit_entries_no_update", "audit_entries_no_delete", "audit_checkpoints_no_delete"}
			var exec func(q string) error
			if backend == store.BackendPostgres {
				conn, err := pgx.Connect(context.Background(), f.dsn)
				require.NoError(t, err)
				t.Cleanup(func() { conn.Close(context.Background()) })
				triggers = []string{"audit_entries_append_only ON audit_entries", "audit_checkpoints_append_only ON audit_checkpoints"}
				exec = func(q string) error { _, err := conn.Exec(context.Background(), q); return err }
			} else {
				db, err := sql.Open("sqlite", "file:"+filepath.Join(f.data, store.SQLiteFileName)+"?_pragma=busy_timeout(5000)")
				require.NoError(t, err)
				db.SetMaxOpenConns(1)
				t.Cleanup(func() { db.Close() })
				exec = func(q string) error { _, err := db.Exec(q); return err }
			}
			f.tamper = func(t *testing.T, stmts ...string) {
				t.Helper()
				for _, tr := range triggers {
					require.NoError(t, exec("DROP TRIGGER "+tr))
				}
				for _, q := range stmts {
					require.NoError(t, exec(q), q)
				}
			}
			fn(t, f)
		})
	}
}

// A checkpoint a second party saved earlier (its text form) is proven
// against the log as it is now: accepted while the log extends it, refused
// once the log was cut below it or rewritten under it — even with the
// auditor's checkpoint file gone too.
func TestVerifyTrustedCheckpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper []string
		want   string
	}{
		{
			name:   "cut below it",
			tamper: []string{`DELETE FROM audit_entries WHERE idx >= 4`, `DELETE FROM audit_checkpoints WHERE size > 3`},
			want:   "TAMPERED t1: entry 4 missing: checkpoint size 6 > log size 4: entries 4..5 missing",
		},
		{
			name:   "cut below it, every stored checkpoint deleted",
			tamper: []string{`DELETE FROM audit_entries WHERE idx >= 3`, `DELETE FROM audit_checkpoints`},
			want:   "TAMPERED t1: entry 3 missing: checkpoint size 6 > log size 3: entries 3..5 missing",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, f *fixture) {
				f.append(t, 3)
				saved := filepath.Join(t.TempDir(), "t1.checkpoint")
				require.NoError(t, os.WriteFile(saved, f.append(t, 3).Text(), 0o644))
				f.append(t, 3) // the log goes on after it was saved

				out, err := f.verify(t, "-trusted-checkpoint", saved)
				require.NoError(t, err, out)
				require.Contains(t, out, "published "+filepath.Join(f.data, auditcmd.DefaultCheckpointFile)+": 3 checkpoints")
				require.Contains(t, out, "ok       t1: 9 entries, 3 checkpoints, 9 covered")

				f.tamper(t, tc.tamper...)
				require.NoError(t, os.Remove(filepath.Join(f.data, auditcmd.DefaultCheckpointFile)))
				out, err = f.verify(t, "-trusted-checkpoint", saved)
				require.ErrorIs(t, err, auditcmd.ErrTampered)
				require.Contains(t, out, tc.want)
				var stdout, stderr bytes.Buffer
				require.Equal(t, 2, cli.Main(t.Context(), append([]string{"audit-verify"}, f.args("-trusted-checkpoint", saved)...), "all", &stdout, &stderr))
			})
		})
	}
}

// Rewriting the chain and re-signing is caught by a trusted checkpoint's
// root; a trusted checkpoint that is not the log's is refused as input.
func TestVerifyTrustedCheckpointRoot(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, f *fixture) {
		saved := filepath.Join(t.TempDir(), "t1.checkpoint")
		require.NoError(t, os.WriteFile(saved, f.append(t, 4).Text(), 0o644))
		// A forged history of the same length, signed with the log's own keys
		// (an auditor restarted over a rewritten store, without its file).
		require.NoError(t, f.log.Close())
		f.tamper(t, `DELETE FROM audit_entries`, `DELETE FROM audit_checkpoints`)
		forged, err := auditlog.New(auditlog.Options{Store: f.st, Keys: f.keys})
		require.NoError(t, err)
		for i := range 5 {
			_, _, err := forged.Append(t.Context(), auditlog.Event{TenantID: "t1", ProposalID: "p", Event: auditlog.EventProposalEnacted,
				Actor: "mallory", Payload: map[string]any{"i": i}})
			require.NoError(t, err)
		}
		require.NoError(t, forged.Close())
		require.NoError(t, os.Remove(filepath.Join(f.data, auditcmd.DefaultCheckpointFile)))

		out, err := f.verify(t)
		require.NoError(t, err, "without the saved checkpoint the forgery verifies: %s", out)
		out, err = f.verify(t, "-trusted-checkpoint", saved)
		require.ErrorIs(t, err, auditcmd.ErrTampered)
		require.Contains(t, out, "entries 0 to 3 no longer have the root of the published checkpoint of size 4")

		other, err := auditlog.GenerateKeys()
		require.NoError(t, err)
		ost, err := store.Open(t.Context(), store.Config{DataDir: t.TempDir()})
		require.NoError(t, err)
		t.Cleanup(func() { ost.Close() })
		ol, err := auditlog.New(auditlog.Options{Store: ost, Keys: other})
		require.NoError(t, err)
		_, _, err = ol.Append(t.Context(), auditlog.Event{TenantID: "t1", ProposalID: "p", Event: auditlog.EventProposalEnacted, Payload: map[string]any{}})
		require.NoError(t, err)
		c, err := ol.Checkpoint(t.Context(), "t1")
		require.NoError(t, err)
		require.NoError(t, ol.Close())
		require.NoError(t, os.WriteFile(saved, c.Text(), 0o644))
		_, err = f.verify(t, "-trusted-checkpoint", saved)
		require.ErrorIs(t, err, auditlog.ErrBadSignature)
	})
}

// -witness-key: only checkpoints the witness cosigned cover entries.
func TestVerifyWitnessKey(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, f *fixture) {
		f.append(t, 3)
		dir := filepath.Join(t.TempDir(), "witness")
		_, err := witness.GenerateKey(dir, "witness.example")
		require.NoError(t, err)
		out, err := f.verify(t, "-witness-key", filepath.Join(dir, witness.PubFile))
		require.NoError(t, err, "three fresh entries are within the tail bound: %s", out)
		out, err = f.verify(t, "-witness-key", filepath.Join(dir, witness.PubFile), "-max-unsigned", "0")
		require.ErrorIs(t, err, auditcmd.ErrTampered)
		require.Contains(t, out, "TAMPERED t1: entry 0 unsigned: entries 0..2 are not covered by any checkpoint cosigned by witness.example")
	})
}
