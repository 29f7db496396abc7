package store_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

const schemaFile = "../../infra/sql/i4_decision_schema.sql"

// The checked-in schema must equal what the migrations render.
func TestSchemaFileUpToDate(t *testing.T) {
	want, err := store.PostgresSchemaSQL()
	require.NoError(t, err)
	got, err := os.ReadFile(schemaFile)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got),
		"%s is stale: run `go run ./internal/store/cmd/genschema` (or go generate ./internal/store)", schemaFile)
}
