package store

import (
	"context"
	"database/sql"
	"io/fs"
	"path"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"
)

// Every schema version must exist for both backends.
func TestMigrationsMatchAcrossBackends(t *testing.T) {
	names := func(dir string) []string {
		matches, err := fs.Glob(migrationsFS, path.Join("migrations", dir, "*.sql"))
		require.NoError(t, err)
		for i, m := range matches {
			matches[i] = path.Base(m)
		}
		return matches
	}
	pg := names("postgres")
	require.NotEmpty(t, pg)
	require.Equal(t, pg, names("sqlite"))
}

func TestUpSection(t *testing.T) {
	src := "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (x int);  \n-- +goose StatementEnd\n\n" +
		"-- +goose Down\nDROP TABLE a;\n"
	up, err := upSection([]byte(src))
	require.NoError(t, err)
	require.Equal(t, "CREATE TABLE a (x int);\n", up)

	_, err = upSection([]byte("CREATE TABLE a (x int);\n"))
	require.Error(t, err)
}

// Migration 00005 back-fills action and target of proposals stored before it.
func TestSQLiteMigration5BackfillsActionAndTarget(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "fabric.db")
	db, err := sql.Open("sqlite", sqliteDSN(file, "_pragma=journal_mode(WAL)&_txlock=immediate"))
	require.NoError(t, err)
	defer db.Close()
	p, err := newMigrator(goose.DialectSQLite3, "sqlite", db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 4)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO proposals (id, tenant_id, status, manifest, manifest_sha256, created_at, updated_at)
		VALUES ('01J00000000000000000000000', 't1', 'ENACTED', CAST('{"action":"scale","target":"svc-x"}' AS BLOB), 'x', 1, 1),
		       ('01J00000000000000000000001', 't1', 'ENACTED', CAST('{"steps":[]}' AS BLOB), 'y', 2, 2)`)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
	rows, err := db.QueryContext(ctx, `SELECT action, target FROM proposals ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var got [][2]string
	for rows.Next() {
		var a, tg string
		require.NoError(t, rows.Scan(&a, &tg))
		got = append(got, [2]string{a, tg})
	}
	require.NoError(t, rows.Err())
	require.Equal(t, [][2]string{{"scale", "svc-x"}, {"", ""}}, got)
}
