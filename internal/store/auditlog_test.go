package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/internal/store/storetest"
)

// The statements a tamperer would run; every one must be refused by the schema
// (not merely avoided by the store's code).
var tamperStatements = []string{
	`UPDATE audit_entries SET actor = 'mallory' WHERE idx = 0`,
	`UPDATE audit_entries SET idx = idx + 10`,
	`DELETE FROM audit_entries WHERE idx = 1`,
	`DELETE FROM audit_entries`,
	`UPDATE audit_checkpoints SET root_hash = 'x'`,
	`DELETE FROM audit_checkpoints`,
}

func seedAudit(t *testing.T, s store.Store) {
	t.Helper()
	require.NoError(t, s.AuditLog().Append(t.Context(), storetest.AuditChain("t", "p", 0, "", 3)))
	_, err := s.AuditLog().PutCheckpoint(t.Context(), &store.AuditCheckpoint{
		TenantID: "t", Size: 3, RootHash: canonical.SHA256Hex([]byte("root")),
		Note: "n\n", MLDSASignature: "s", MLDSAKeyID: "k",
	})
	require.NoError(t, err)
}

func requireUntouched(t *testing.T, s store.Store) {
	t.Helper()
	got, err := s.AuditLog().List(t.Context(), "t", 0, 0)
	require.NoError(t, err)
	require.Equal(t, storetest.AuditChain("t", "p", 0, "", 3), got)
	cps, err := s.AuditLog().ListCheckpoints(t.Context(), "t")
	require.NoError(t, err)
	require.Len(t, cps, 1)
	require.Equal(t, canonical.SHA256Hex([]byte("root")), cps[0].RootHash)
}

func TestSQLiteAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := store.Open(t.Context(), store.Config{DataDir: dir})
	require.NoError(t, err)
	defer s.Close()
	seedAudit(t, s)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFileName)+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	for _, q := range tamperStatements {
		_, err := db.ExecContext(t.Context(), q)
		require.ErrorContains(t, err, "audit log is append-only", q)
	}
	requireUntouched(t, s)
}

func TestPostgresAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDSN(t)
	s, err := store.Open(t.Context(), store.Config{PostgresDSN: dsn})
	require.NoError(t, err)
	defer s.Close()
	seedAudit(t, s)

	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for _, q := range append(tamperStatements, `TRUNCATE audit_entries`, `TRUNCATE audit_checkpoints`) {
		_, err := conn.Exec(t.Context(), q)
		require.ErrorContains(t, err, "audit log is append-only", q)
	}
	requireUntouched(t, s)
}
