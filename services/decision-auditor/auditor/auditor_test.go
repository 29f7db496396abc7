package auditor

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
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
