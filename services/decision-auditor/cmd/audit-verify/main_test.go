package main

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
)

// The command verifies a store with the public keys alone and exits 2 (errTampered)
// naming the entry once a row was changed.
func TestVerifyCommand(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	keyDir := filepath.Join(dataDir, "keys")
	k, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	require.NoError(t, k.WriteFiles(keyDir))

	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: dataDir})
	require.NoError(t, err)
	l, err := auditlog.New(auditlog.Options{Store: st, Keys: k})
	require.NoError(t, err)
	for i := range 3 {
		_, _, err := l.Append(ctx, auditlog.Event{TenantID: "t1", ProposalID: "p", Event: auditlog.EventProposalScored,
			Payload: map[string]any{"i": i}})
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())
	require.NoError(t, st.Close())

	var out bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"-data-dir", dataDir, "-postgres-dsn", ""}, &out))
	require.Contains(t, out.String(), "ok       t1: 3 entries, 1 checkpoints")

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, store.SQLiteFileName))
	require.NoError(t, err)
	defer db.Close()
	for _, q := range []string{
		`DROP TRIGGER audit_entries_no_update`,
		`UPDATE audit_entries SET event = 'proposal.enacted' WHERE idx = 1`,
	} {
		_, err := db.Exec(q)
		require.NoError(t, err)
	}
	out.Reset()
	require.ErrorIs(t, realMain(ctx, []string{"-data-dir", dataDir, "-postgres-dsn", "", "-tenant", "t1"}, &out), errTampered)
	require.Contains(t, out.String(), "TAMPERED t1: entry 1 altered")
}
