package coordinator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/store"
)

// flakyAuditor records what it is given, in order, and refuses while down.
type flakyAuditor struct {
	mu     sync.Mutex
	down   bool
	refuse string // a key the auditor refuses for good (INVALID_ARGUMENT)
	got    []string
	actors []string
	calls  int
}

func (a *flakyAuditor) Append(_ context.Context, events ...AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return status.Error(codes.Unavailable, "auditor down")
	}
	for _, e := range events {
		if e.Key == a.refuse && a.refuse != "" {
			return status.Error(codes.InvalidArgument, "refused")
		}
	}
	a.calls++
	for _, e := range events {
		a.got = append(a.got, e.Key)
		a.actors = append(a.actors, e.Actor)
	}
	return nil
}

func (a *flakyAuditor) RecordSnapshot(ctx context.Context, e AuditRecord, sha string) error {
	return a.Append(ctx, e)
}

func (a *flakyAuditor) setDown(down bool) {
	a.mu.Lock()
	a.down = down
	a.mu.Unlock()
}

func (a *flakyAuditor) keys() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func outboxLen(t *testing.T, st store.Store) int {
	t.Helper()
	es, err := st.Outbox().List(context.Background(), 0, time.Time{}, 0)
	require.NoError(t, err)
	return len(es)
}

// An auditor outage loses no event and keeps their order: what the request path could
// not deliver stays in the outbox, later events wait behind it, and the relay delivers
// them all in order once the auditor is back, then empties the outbox.
func TestAuditOutboxSurvivesAuditorOutage(t *testing.T) {
	t.Parallel()
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "user:alice", TenantID: "t1", Roles: []string{auth.RoleProposer}})
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	aud := &flakyAuditor{}
	s, err := New(Deps{Store: st, Audit: aud, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, s.Close()) // the test drives the relay's sweeps itself

	p := &store.Proposal{ID: "01J00000000000000000000000", TenantID: "t1", Status: stSubmitted, Version: 1}
	event := func(n int) auditEvent {
		return auditEvent{kind: store.OutboxEntryKind, event: "e", payload: map[string]any{"n": n}, key: fmt.Sprintf("k%d", n)}
	}
	stageAndDeliver := func(events ...auditEvent) {
		entries, err := s.outboxEntries(ctx, p.TenantID, p.ID, events...)
		require.NoError(t, err)
		staged, err := stageIn(ctx, st, entries)
		require.NoError(t, err)
		s.deliver(ctx, staged)
	}

	stageAndDeliver(event(1), snapshotAudit(p, "pre", "abc"))
	require.Equal(t, []string{"k1", p.ID + ":snapshot:pre"}, aud.keys(), "delivered at once")
	aud.mu.Lock()
	aud.calls = 0
	aud.mu.Unlock()
	stageAndDeliver(event(6), event(7), event(8))
	require.Equal(t, 1, aud.calls, "consecutive events go in one call")
	aud.mu.Lock()
	aud.got = aud.got[:2]
	aud.mu.Unlock()
	s.relay.sweep(ctx)
	require.Zero(t, outboxLen(t, st), "the sweep deletes what the request path delivered")

	aud.setDown(true)
	stageAndDeliver(event(2), event(3))
	require.Equal(t, 2, outboxLen(t, st), "kept while the auditor is down")
	s.relay.sweep(ctx)
	require.Equal(t, 2, outboxLen(t, st), "a sweep during the outage delivers nothing and loses nothing")
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.outboxPending), "the backlog is exported")
	require.Contains(t, s.healthChecks(ctx)["audit_outbox"], "2 event(s) waiting", "and reported on /health")
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.outboxDeferred))

	aud.setDown(false)
	stageAndDeliver(event(4)) // the auditor is back, but 2 and 3 are not delivered yet
	require.Len(t, aud.keys(), 2, "a later event waits behind the backlog")
	s.relay.sweep(ctx)
	require.Equal(t, []string{"k1", p.ID + ":snapshot:pre", "k2", "k3", "k4"}, aud.keys(), "in the order they happened")
	require.Zero(t, outboxLen(t, st))
	require.Zero(t, testutil.ToFloat64(s.metrics.outboxPending))
	require.Equal(t, "ok", s.healthChecks(ctx)["audit_outbox"])
	require.Equal(t, 3.0, testutil.ToFloat64(s.metrics.outboxRelayed))
	for _, a := range aud.actors {
		require.Equal(t, "user:alice", a, "relayed events keep the principal of the request that caused them")
	}

	stageAndDeliver(event(5))
	require.Equal(t, "k5", aud.keys()[5], "caught up: the request path delivers directly again")
}

// An entry the auditor refuses for good does not block the others.
func TestAuditOutboxSkipsRefusedEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	aud := &flakyAuditor{refuse: "bad"}
	s, err := New(Deps{Store: st, Audit: aud, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = st.Outbox().Add(ctx, &store.OutboxEntry{TenantID: "t1", ProposalID: "p", Kind: store.OutboxEntryKind,
		Event: "e", Payload: []byte(`{}`), IdempotencyKey: "bad"})
	require.NoError(t, err)
	_, err = st.Outbox().Add(ctx, &store.OutboxEntry{TenantID: "t1", ProposalID: "p", Kind: store.OutboxEntryKind,
		Event: "e", Payload: []byte(`{}`), IdempotencyKey: "good"})
	require.NoError(t, err)
	s.relay.backlog.Store(true)
	s.relay.sweep(ctx)
	require.Equal(t, []string{"good"}, aud.keys())
	require.Equal(t, 1, outboxLen(t, st), "the refused entry stays for an operator")
}
