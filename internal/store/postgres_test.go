package store_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/internal/store/storetest"
)

func newPostgres(t testing.TB) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{PostgresDSN: pgtest.NewDSN(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestPostgresConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return newPostgres(t) })
}

// Processes starting at once against an empty database: the advisory lock
// makes them migrate one after the other, and all succeed.
func TestPostgresConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewEmptyDSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := store.Open(t.Context(), store.Config{PostgresDSN: dsn})
			if err == nil {
				_, _, err = s.Proposals().Create(t.Context(), storetest.NewProposal("t"))
				err = errors.Join(err, s.Close())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func TestPostgresOpenBadDSN(t *testing.T) {
	_, err := store.Open(t.Context(), store.Config{PostgresDSN: "postgres://%zz"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

// infra/sql/i4_decision_schema.sql applies cleanly to an empty database and
// yields the same tables, columns, constraints and indexes as the migrations.
func TestPostgresSchemaFileApplies(t *testing.T) {
	t.Parallel()
	schema, err := os.ReadFile(schemaFile)
	require.NoError(t, err)

	fromFile := pgtest.NewEmptyDSN(t)
	conn, err := pgx.Connect(t.Context(), fromFile)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), string(schema)) // simple protocol: many statements
	require.NoError(t, err)

	migrated, err := pgx.Connect(t.Context(), pgtest.NewDSN(t))
	require.NoError(t, err)
	defer migrated.Close(context.Background())

	require.Equal(t, describeSchema(t, migrated), describeSchema(t, conn))
}

// describeSchema lists the public schema's columns, constraints and indexes.
func describeSchema(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `
		SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name, data_type, is_nullable, column_default)
		  FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'fabric_store_schema_version'
		UNION ALL
		SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid))
		  FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'fabric_store_schema_version'
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'fabric_store_schema_version'
		ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, out)
	return out
}
