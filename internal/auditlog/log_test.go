package auditlog_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

// verifyTrail checks a trail as an outside verifier holding only the public
// keys: each entry's hash, its inclusion proof, and the checkpoint's two signatures.
func verifyTrail(t *testing.T, tenant string, tr *auditlog.Trail) {
	t.Helper()
	v := testKeys.Verifier()
	cp, err := v.Verify(tr.Checkpoint.Note, tr.Checkpoint.MLDSASignature)
	require.NoError(t, err)
	require.Equal(t, auditlog.Origin(tenant), cp.Origin)
	require.Len(t, tr.Proofs, len(tr.Entries))
	for i, e := range tr.Entries {
		h, err := auditlog.EntryHash(e)
		require.NoError(t, err)
		require.Equal(t, e.EntryHash, h)
		leaf, err := auditlog.LeafHash(e.EntryHash)
		require.NoError(t, err)
		require.NoError(t, proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.Index), cp.Size, leaf, tr.Proofs[i], cp.Root),
			"entry %d", e.Index)
	}
}

func TestAppendChainsProvesAndSigns(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		l := newLog(t, d.st)
		// Concurrent appenders on two tenants: each log is gapless and chained.
		const n = 40
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range n / 4 {
					for _, tenant := range []string{"t1", "t2"} {
						_, _, err := l.Append(t.Context(), event(tenant, fmt.Sprintf("p%d", i%3), auditlog.EventNegotiationVote, w*100+i))
						require.NoError(t, err)
					}
				}
			})
		}
		wg.Wait()
		for _, tenant := range []string{"t1", "t2"} {
			all, err := d.st.AuditLog().List(t.Context(), tenant, 0, 0)
			require.NoError(t, err)
			require.Len(t, all, n)
			for i, e := range all {
				require.EqualValues(t, i, e.Index)
				if i > 0 {
					require.Equal(t, all[i-1].EntryHash, e.PrevHash)
				} else {
					require.Empty(t, e.PrevHash)
				}
			}
		}

		tr, err := l.Trail(t.Context(), "t1", "p1")
		require.NoError(t, err)
		require.NotEmpty(t, tr.Entries)
		for _, e := range tr.Entries {
			require.Equal(t, "p1", e.ProposalID)
			require.Equal(t, "t1", e.TenantID)
		}
		require.EqualValues(t, n, tr.Checkpoint.Size, "signed on demand, covering the whole log")
		verifyTrail(t, "t1", tr)

		// Consistency from that checkpoint to a later one.
		first := tr.Checkpoint
		appendN(t, l, "t1", 7)
		second, err := l.Checkpoint(t.Context(), "t1")
		require.NoError(t, err)
		require.EqualValues(t, n+7, second.Size)
		cons, err := l.ConsistencyProof(t.Context(), "t1", first.Size, second.Size)
		require.NoError(t, err)
		require.NoError(t, proof.VerifyConsistency(rfc6962.DefaultHasher, first.Size, second.Size, cons, first.Root, second.Root))
		_, err = l.ConsistencyProof(t.Context(), "t1", 3, n+8)
		require.ErrorIs(t, err, auditlog.ErrInvalid)

		// The note is a standard C2SP checkpoint: note.Open with the verifier key.
		nv, err := note.NewVerifier(testKeys.Verifier().NoteVerifierKey())
		require.NoError(t, err)
		opened, err := note.Open(second.Note, note.VerifierList(nv))
		require.NoError(t, err)
		require.Equal(t, string(second.Body()), opened.Text)
		require.True(t, strings.HasPrefix(opened.Text, "decision-fabric/audit/t1\n47\n"), opened.Text)

		_, err = l.Trail(t.Context(), "t2", "nope")
		require.ErrorIs(t, err, auditlog.ErrNotFound)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = l.Trail(t.Context(), "t3", "p1")
		require.ErrorIs(t, err, auditlog.ErrNotFound, "another tenant's proposal is not found")

		rep, err := l.Verify(t.Context(), "")
		require.NoError(t, err)
		require.True(t, rep.OK(), "%+v", rep.Err())
		require.Len(t, rep.Tenants, 2)
		require.EqualValues(t, n+7, rep.Tenants[0].Entries)
	})
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		l := newLog(t, d.st)
		e := event("t", "p", auditlog.EventSnapshotRecorded, 1)
		e.IdempotencyKey = "snapshot:p:pre"
		first := mustAppend(t, l, e)

		var wg sync.WaitGroup
		got := make([]*store.AuditEntry, 8)
		created := make([]bool, 8)
		for i := range got {
			wg.Go(func() {
				var err error
				got[i], created[i], err = l.Append(t.Context(), e)
				require.NoError(t, err)
			})
		}
		wg.Wait()
		for i := range got {
			require.False(t, created[i])
			require.Equal(t, first, got[i])
		}
		n, err := d.st.AuditLog().Size(t.Context(), "t")
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		// Repeats within one batch (a fresh key raced by many callers).
		e.IdempotencyKey = "snapshot:p:post"
		var createdN int
		var mu sync.Mutex
		for range 8 {
			wg.Go(func() {
				_, c, err := l.Append(t.Context(), e)
				require.NoError(t, err)
				if c {
					mu.Lock()
					createdN++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Equal(t, 1, createdN)
		n, err = d.st.AuditLog().Size(t.Context(), "t")
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
	})
}

func TestInvalidEvents(t *testing.T) {
	t.Parallel()
	l := newLog(t, openDB(t, store.BackendSQLite).st)
	sum := canonical.SHA256Hex([]byte(`{"n":1}`))
	for name, mutate := range map[string]func(e *auditlog.Event){
		"no tenant":          func(e *auditlog.Event) { e.TenantID = "" },
		"control in tenant":  func(e *auditlog.Event) { e.TenantID = "t\n1" },
		"proposal with @":    func(e *auditlog.Event) { e.ProposalID = "alice@example.com" },
		"no proposal":        func(e *auditlog.Event) { e.ProposalID = "" },
		"event upper":        func(e *auditlog.Event) { e.Event = "Proposal.Submitted" },
		"event one word":     func(e *auditlog.Event) { e.Event = "submitted" },
		"bad trace":          func(e *auditlog.Event) { e.TraceID = "xyz" },
		"bad key":            func(e *auditlog.Event) { e.IdempotencyKey = "a b" },
		"bad payload hash":   func(e *auditlog.Event) { e.Payload = nil; e.PayloadSHA256 = "ABC" },
		"no payload at all":  func(e *auditlog.Event) { e.Payload = nil },
		"payload not object": func(e *auditlog.Event) { e.Payload = []int{1} },
		"payload not JSON":   func(e *auditlog.Event) { e.Payload = []byte("{") },
		"payload mismatch":   func(e *auditlog.Event) { e.PayloadSHA256 = sum },
		"payload too big": func(e *auditlog.Event) {
			e.Payload = map[string]any{"x": strings.Repeat("a", auditlog.MaxPayloadBytes)}
		},
		"actor too long": func(e *auditlog.Event) { e.Actor = strings.Repeat("a", 300) },
	} {
		e := event("t", "p", auditlog.EventProposalScored, 2)
		mutate(&e)
		_, _, err := l.Append(t.Context(), e)
		require.ErrorIs(t, err, auditlog.ErrInvalid, name)
	}
	// A hash alone is fine; a hash that matches the payload too.
	e := event("t", "p", auditlog.EventProposalScored, 1)
	e.Payload, e.PayloadSHA256 = nil, sum
	got := mustAppend(t, l, e)
	require.Equal(t, sum, got.PayloadSHA256)
	require.Equal(t, "{}", string(got.Summary))
	e.Payload = map[string]any{"n": 1}
	got = mustAppend(t, l, e)
	require.Equal(t, sum, got.PayloadSHA256)
	require.Equal(t, `{"n":1}`, string(got.Summary))
}

func TestPayloadIsNeverStored(t *testing.T) {
	t.Parallel()
	l := newLog(t, openDB(t, store.BackendSQLite).st)
	jwt := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
	payload := map[string]any{
		"contact": "write to alice@example.com",
		"token":   "tok-3f9a7c1e55",
		"auth":    "Bearer " + jwt,
		"nested":  map[string]any{"email": "bob@example.org", "replicas": 3},
		"big":     strings.Repeat("x", 10),
	}
	e := event("t", "p", auditlog.EventProposalSubmitted, 0)
	e.Payload, e.Actor = payload, "carol@example.net"
	got := mustAppend(t, l, e)
	raw, err := canonical.Marshal(payload)
	require.NoError(t, err)
	require.Equal(t, canonical.SHA256Hex(raw), got.PayloadSHA256, "the hash covers the whole payload")
	row := fmt.Sprintf("%+v %s", got, got.Summary)
	for _, secret := range []string{"alice@example.com", "tok-3f9a7c1e55", jwt, "bob@example.org", "carol@example.net"} {
		require.NotContains(t, row, secret)
	}
	require.Contains(t, string(got.Summary), `"replicas":3`, "non-sensitive data is kept")

	// A summary over the limit is replaced; the hash still covers everything.
	e.Payload = map[string]any{"blob": strings.Repeat("y", auditlog.MaxSummaryBytes)}
	got = mustAppend(t, l, e)
	require.Contains(t, string(got.Summary), `"omitted"`)
	require.Less(t, len(got.Summary), 200)
}

func TestCheckpointBatching(t *testing.T) {
	t.Parallel()
	d := openDB(t, store.BackendSQLite)
	l := newLog(t, d.st, func(o *auditlog.Options) {
		o.CheckpointEvery = 10
		o.CheckpointInterval = time.Hour
	})
	appendN(t, l, "t", 25)
	require.Eventually(t, func() bool {
		cps, err := d.st.AuditLog().ListCheckpoints(t.Context(), "t")
		require.NoError(t, err)
		return len(cps) == 2 && cps[0].Size == 10 && cps[1].Size == 20
	}, 5*time.Second, 10*time.Millisecond, "one checkpoint per 10 entries, not per entry")

	tr, err := l.Trail(t.Context(), "t", "p0")
	require.NoError(t, err)
	require.EqualValues(t, 25, tr.Checkpoint.Size, "a proof beyond the latest checkpoint signs one on demand")
	tr, err = l.Trail(t.Context(), "t", "p1")
	require.NoError(t, err)
	require.EqualValues(t, 25, tr.Checkpoint.Size, "and reuses it")
	cps, err := d.st.AuditLog().ListCheckpoints(t.Context(), "t")
	require.NoError(t, err)
	require.Len(t, cps, 3)
}

func TestCheckpointOnInterval(t *testing.T) {
	t.Parallel()
	d := openDB(t, store.BackendSQLite)
	l := newLog(t, d.st, func(o *auditlog.Options) {
		o.CheckpointEvery = 1000
		o.CheckpointInterval = 40 * time.Millisecond
	})
	appendN(t, l, "t", 3)
	require.Eventually(t, func() bool {
		c, err := d.st.AuditLog().LatestCheckpoint(t.Context(), "t")
		return err == nil && c.Size == 3
	}, 5*time.Second, 10*time.Millisecond, "signed by the sequencer's timer, without a reader asking")
}

func TestCloseSignsAndRestartResumes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		l, err := auditlog.New(auditlog.Options{Store: d.st, Keys: testKeys, CheckpointInterval: time.Hour})
		require.NoError(t, err)
		before := appendN(t, l, "t", 5)
		require.NoError(t, l.Close())
		require.NoError(t, l.Close(), "idempotent")
		_, _, err = l.Append(t.Context(), event("t", "p", auditlog.EventProposalEnacted, 0))
		require.ErrorIs(t, err, auditlog.ErrClosed)
		cp, err := d.st.AuditLog().LatestCheckpoint(t.Context(), "t")
		require.NoError(t, err)
		require.EqualValues(t, 5, cp.Size, "Close signs what is unsigned")

		again := newLog(t, d.st)
		next := mustAppend(t, again, event("t", "p9", auditlog.EventProposalEnacted, 9))
		require.EqualValues(t, 5, next.Index)
		require.Equal(t, before[4].EntryHash, next.PrevHash)
		tr, err := again.Trail(t.Context(), "t", "p9")
		require.NoError(t, err)
		verifyTrail(t, "t", tr)
	})
}

// Two processes (two Logs) appending to one store at once: every append lands
// exactly once, the log stays gapless, and each process proves the other's entries.
func TestTwoWritersShareALog(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		a, b := newLog(t, d.st), newLog(t, d.st)
		var wg sync.WaitGroup
		for i, l := range []*auditlog.Log{a, b, a, b} {
			wg.Go(func() {
				for j := range 10 {
					_, _, err := l.Append(t.Context(), event("t", fmt.Sprintf("w%d", i), auditlog.EventProposalScored, j))
					require.NoError(t, err)
				}
			})
		}
		wg.Wait()
		all, err := d.st.AuditLog().List(t.Context(), "t", 0, 0)
		require.NoError(t, err)
		require.Len(t, all, 40)
		for i, e := range all {
			require.EqualValues(t, i, e.Index)
		}
		for _, l := range []*auditlog.Log{a, b} {
			tr, err := l.Trail(t.Context(), "t", "w0")
			require.NoError(t, err)
			require.Len(t, tr.Entries, 10)
			verifyTrail(t, "t", tr)
		}
		rep, err := a.Verify(t.Context(), "t")
		require.NoError(t, err)
		require.NoError(t, rep.Err())
	})
}

func TestAppendHonoursContext(t *testing.T) {
	t.Parallel()
	l := newLog(t, openDB(t, store.BackendSQLite).st)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := l.Append(ctx, event("t", "p", auditlog.EventProposalScored, 1))
	require.True(t, errors.Is(err, context.Canceled) || err == nil, "%v", err)
}

// The entry hash is a fixed, documented function of the fields: this vector
// pins it, so a change to it (which would break every stored log) is deliberate.
func TestEntryHashVector(t *testing.T) {
	t.Parallel()
	e := &store.AuditEntry{
		TenantID: "t1", Index: 1, ProposalID: "01J0000000000000000000000A", Event: "proposal.enacted",
		Actor: "svc", TraceID: "", PayloadSHA256: strings.Repeat("a", 64), Summary: []byte(`{"b":2,"a":"<x>"}`),
		PrevHash: strings.Repeat("b", 64), CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC),
	}
	doc := `{"actor":"svc","created_at":"2025-06-01T12:00:00.123456Z","event":"proposal.enacted","idempotency_key":"",` +
		`"index":1,"payload_sha256":"` + strings.Repeat("a", 64) + `","prev_hash":"` + strings.Repeat("b", 64) +
		`","proposal_id":"01J0000000000000000000000A","summary":{"a":"<x>","b":2},"tenant_id":"t1","trace_id":"","v":1}`
	got, err := auditlog.EntryHash(e)
	require.NoError(t, err)
	require.Equal(t, canonical.SHA256Hex([]byte(doc)), got)
	leaf, err := auditlog.LeafHash(got)
	require.NoError(t, err)
	raw, _ := hex.DecodeString(got)
	require.Equal(t, rfc6962.DefaultHasher.HashLeaf(raw), leaf)
}

// TestReplaysByKey: the entries a batch replays are found with one lookup per
// tenant (store GetByIdempotencyKeys), each under its own tenant and key only.
func TestReplaysByKey(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		l := newLog(t, d.st)
		var events []auditlog.Event
		for _, tenant := range []string{"a", "b"} {
			for i := range 3 {
				e := event(tenant, "p", auditlog.EventProposalSubmitted, i)
				e.IdempotencyKey = fmt.Sprintf("k%d", i)
				events = append(events, e)
			}
		}
		first, err := l.AppendAll(t.Context(), events[:2]) // a:k0, a:k1
		require.NoError(t, err)

		got, err := d.st.AuditLog().GetByIdempotencyKeys(t.Context(), "a", []string{"k1", "", "k0", "k9", "k1"})
		require.NoError(t, err)
		require.Equal(t, map[string]*store.AuditEntry{"k0": first[0].Entry, "k1": first[1].Entry}, got)
		got, err = d.st.AuditLog().GetByIdempotencyKeys(t.Context(), "b", []string{"k0", "k1"})
		require.NoError(t, err)
		require.Empty(t, got, "another tenant's keys")
		got, err = d.st.AuditLog().GetByIdempotencyKeys(t.Context(), "a", nil)
		require.NoError(t, err)
		require.Empty(t, got)

		// Replays of a, new entries of a and b, and a repeat within the batch.
		all, err := l.AppendAll(t.Context(), append(events, events[4]))
		require.NoError(t, err)
		require.Len(t, all, 7)
		for i, a := range all {
			require.Equal(t, i >= 2 && i < 6, a.Created, "event %d", i)
		}
		require.Equal(t, first[0].Entry, all[0].Entry)
		require.Equal(t, first[1].Entry, all[1].Entry)
		require.Equal(t, all[4].Entry, all[6].Entry)
		require.False(t, all[6].Created)
		for _, tenant := range []string{"a", "b"} {
			n, err := d.st.AuditLog().Size(t.Context(), tenant)
			require.NoError(t, err)
			require.EqualValues(t, 3, n)
		}
	})
}
