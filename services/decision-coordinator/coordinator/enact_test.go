package coordinator

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/policy"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// racingWorld applies for real, then lets the proposal move on before the coordinator
// records the enactment (a concurrent dry run of the same proposal).
type racingWorld struct {
	*world.Simulated
	interfere func()
}

func (w racingWorld) Apply(ctx context.Context, c world.Change, pre world.Snapshot) (world.Snapshot, error) {
	post, err := w.Simulated.Apply(ctx, c, pre)
	if err == nil {
		w.interfere()
	}
	return post, err
}

// ApplyIn: a racing world lives outside the store (like a tenant's webhook), so the
// coordinator applies first and records after.
func (racingWorld) ApplyIn(context.Context, store.Store, world.Change, world.Snapshot) (world.Snapshot, bool, error) {
	return world.Snapshot{}, false, nil
}

// failingRecordWorld is the simulated world whose change is made in the recording
// transaction, after which the recording fails.
type failingRecordWorld struct{ *world.Simulated }

func (w failingRecordWorld) ApplyIn(ctx context.Context, tx store.Store, c world.Change, pre world.Snapshot) (world.Snapshot, bool, error) {
	if _, _, err := w.Simulated.ApplyIn(ctx, tx, c, pre); err != nil {
		return world.Snapshot{}, true, err
	}
	return world.Snapshot{}, true, status.Error(codes.Unavailable, "the store failed after the change was written")
}

// With a world in the store, the change and its record are one transaction: when the
// record fails, the change was never made (a crash between the two is impossible).
func TestEnactInOneTransactionWithTheWorld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	sim := world.NewSimulated(st)
	pre, err := sim.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	p, _, err := st.Proposals().Create(ctx, &store.Proposal{ID: newID(time.Now()), TenantID: "t1", Status: stScored, Impact: policy.ImpactLow,
		Manifest: []byte(`{"action":"scale","target":"svc","regions":["eu-west"],"parameters":{"replicas_delta":1}}`), PreStateSHA256: pre.SHA256})
	require.NoError(t, err)
	s, err := New(Deps{Store: st, World: failingRecordWorld{sim}, Policy: policy.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	_, _, _, err = s.enact(ctx, p)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	now, err := sim.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	require.Equal(t, pre.SHA256, now.SHA256, "the change rolled back with its record")
	got, err := st.Proposals().Get(ctx, "t1", p.ID)
	require.NoError(t, err)
	require.Equal(t, stScored, got.Status)

	// The same world without the failure enacts, in one commit with the record.
	s2, err := New(Deps{Store: st, World: sim, Policy: policy.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	next, _, post, err := s2.enact(ctx, got)
	require.NoError(t, err)
	require.Equal(t, stEnacted, next.Status)
	now, err = sim.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	require.Equal(t, post.SHA256, now.SHA256)
}

// A change applied but not recorded (the proposal moved on concurrently) is undone:
// the world never differs from the record.
func TestEnactUndoesAnApplyItCannotRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	sim := world.NewSimulated(st)
	pre, err := sim.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)

	p, _, err := st.Proposals().Create(ctx, &store.Proposal{ID: newID(time.Now()), TenantID: "t1", Status: stScored, Impact: policy.ImpactLow,
		Manifest: []byte(`{"action":"scale","target":"svc","regions":["eu-west"],"parameters":{"replicas_delta":1}}`), PreStateSHA256: pre.SHA256})
	require.NoError(t, err)
	rw := racingWorld{Simulated: sim}
	rw.interfere = func() {
		cur, err := st.Proposals().Get(ctx, "t1", p.ID)
		require.NoError(t, err)
		_, err = st.Proposals().Advance(ctx, "t1", p.ID, cur.Status, cur.Version,
			store.ProposalChange{Status: cur.Status, Decision: cur.Decision})
		require.NoError(t, err)
	}
	s, err := New(Deps{Store: st, World: rw, Policy: policy.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)

	_, _, _, err = s.enact(ctx, p)
	require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	now, err := sim.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	require.Equal(t, pre.SHA256, now.SHA256, "the applied change was undone")
	got, err := st.Proposals().Get(ctx, "t1", p.ID)
	require.NoError(t, err)
	require.NotEqual(t, stEnacted, got.Status)
}
