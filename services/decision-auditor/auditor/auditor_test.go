package auditor

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/store"
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestKeysOutsideSimulationMustBeProvisioned(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	dir := filepath.Join(t.TempDir(), "keys")
	_, err := NewService(Deps{Store: st, KeyDir: dir})
	require.ErrorContains(t, err, "audit-keygen", "production never creates keys")
	_, err = NewService(Deps{Store: st})
	require.ErrorContains(t, err, "KeyDir")
	_, err = NewService(Deps{KeyDir: dir})
	require.ErrorContains(t, err, "Store")

	k, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	require.NoError(t, k.WriteFiles(dir))
	svc, err := NewService(Deps{Store: st, KeyDir: dir})
	require.NoError(t, err)
	require.Equal(t, k.Verifier().MLDSAKeyID(), svc.log.Verifier().MLDSAKeyID())
	require.NoError(t, svc.Close())

	svc, err = NewService(Deps{Store: st, Ed25519KeyFile: filepath.Join(dir, auditlog.Ed25519KeyFile), MLDSAKeyFile: filepath.Join(dir, auditlog.MLDSAKeyFile)})
	require.NoError(t, err, "explicit paths")
	require.NoError(t, svc.Close())

	sim := filepath.Join(t.TempDir(), "keys")
	svc, err = NewService(Deps{Store: st, KeyDir: sim, Simulation: true})
	require.NoError(t, err, "simulation creates them")
	require.FileExists(t, filepath.Join(sim, auditlog.MLDSAKeyFile))
	require.NoError(t, svc.Close())
	require.NoError(t, svc.Close(), "idempotent")
}

func TestHandlersFailClosedWithoutATenant(t *testing.T) {
	t.Parallel()
	k, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	s, err := NewService(Deps{Store: openStore(t), Keys: k})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background() // no authenticated principal
	_, err = s.GetAuditTrail(ctx, &auditorv1.GetAuditTrailRequest{ProposalId: "p"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = s.AppendEntry(ctx, &auditorv1.AppendEntryRequest{ProposalId: "p", Event: "proposal.scored", PayloadSha256: "x"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = s.RecordSnapshot(ctx, &auditorv1.RecordSnapshotRequest{ProposalId: "p", Kind: "pre"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = s.PlanRollback(ctx, &auditorv1.PlanRollbackRequest{ProposalId: "p"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

func TestPlanSteps(t *testing.T) {
	t.Parallel()
	h := "aa"
	require.Len(t, planSteps(&auditorv1.PlanRollbackResponse{Noop: true, ToSha256: h, FromSha256: h}), 1)
	steps := planSteps(&auditorv1.PlanRollbackResponse{FromSha256: "b", ToSha256: "a",
		PreSnapshot: &auditorv1.AuditEntry{Index: 1}, PostSnapshot: &auditorv1.AuditEntry{Index: 4}})
	require.Len(t, steps, 3)
	require.Contains(t, steps[0], "audit entry 4")
	require.Contains(t, steps[1], "audit entry 1")
}

// The auditor does not start over a store behind the checkpoints it published
// (entries cut with the triggers dropped): it would sign the cut log.
func TestRefusesToStartBehindItsPublishedCheckpoint(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(context.Background(), store.Config{DataDir: dataDir})
	require.NoError(t, err)
	defer st.Close()
	k, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "checkpoints")
	s, err := NewService(Deps{Store: st, Keys: k, CheckpointFile: file})
	require.NoError(t, err)
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "svc", TenantID: "t1", Roles: []string{auth.RoleService}})
	for range 4 {
		_, err := s.AppendEntry(ctx, &auditorv1.AppendEntryRequest{ProposalId: "p", Event: "proposal.scored", Payload: &structpb.Struct{}})
		require.NoError(t, err)
	}
	cp, err := s.GetCheckpoint(ctx, &auditorv1.GetCheckpointRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 4, cp.GetCheckpoint().GetSize())
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, store.SQLiteFileName))
	require.NoError(t, err)
	defer db.Close()
	for _, q := range []string{`DROP TRIGGER audit_entries_no_delete`, `DROP TRIGGER audit_checkpoints_no_delete`,
		`DELETE FROM audit_entries WHERE idx >= 2`, `DELETE FROM audit_checkpoints`} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	_, err = NewService(Deps{Store: st, Keys: k, CheckpointFile: file})
	require.ErrorIs(t, err, auditlog.ErrBehind)
	require.ErrorContains(t, err, `tenant "t1": checkpoint size 4 > log size 2: entries 2..3 missing`)

	// Without its checkpoint file it would start, and sign over the cut log.
	s, err = NewService(Deps{Store: st, Keys: k})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
