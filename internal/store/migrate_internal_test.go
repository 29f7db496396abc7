package store

import (
	"io/fs"
	"path"
	"testing"

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
