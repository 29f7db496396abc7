package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// approvalTests are the ApprovalStore conformance subtests; Run runs them.
var approvalTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"ApprovalOpenIdempotent", testApprovalOpenIdempotent},
	{"ApprovalTenantScope", testApprovalTenantScope},
	{"ApprovalResolveOnce", testApprovalResolveOnce},
	{"ApprovalResolveCancelsReminders", testApprovalResolveCancelsReminders},
	{"ApprovalInTx", testApprovalInTx},
	{"ApprovalMarkReminded", testApprovalMarkReminded},
	{"NotificationEnqueueDuplicates", testNotificationEnqueueDuplicates},
	{"NotificationClaimLease", testNotificationClaimLease},
	{"NotificationClaimConcurrent", testNotificationClaimConcurrent},
}

// newApproval returns an open request of tenant for a fresh proposal id.
func newApproval(tenant string, t0 time.Time) *store.ApprovalRequest {
	return &store.ApprovalRequest{
		TenantID: tenant, ProposalID: NewID(), Impact: "high", Summary: "scale web in eu-west",
		ApprovalsNeeded: 2, Deadline: t0.Add(time.Hour), ReminderAt: t0.Add(45 * time.Minute), CreatedAt: t0,
	}
}

// newNote returns a notification of r's proposal.
func newNote(r *store.ApprovalRequest, kind, channel string, notBefore time.Time) *store.Notification {
	return &store.Notification{
		EventID: r.ProposalID + "/" + kind, Channel: channel, TenantID: r.TenantID, ProposalID: r.ProposalID,
		Kind: kind, Payload: []byte(`{"Kind":"` + kind + `","ProposalID":"` + r.ProposalID + `"}`), NotBefore: notBefore,
	}
}

func approvalT0() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func notesByKind(t *testing.T, s store.Store, tenant, proposal string) map[string]*store.Notification {
	t.Helper()
	ns, err := s.Approvals().ListNotifications(ctx(t), tenant, proposal)
	require.NoError(t, err)
	out := map[string]*store.Notification{}
	for _, n := range ns {
		out[n.Kind+"@"+n.Channel] = n
	}
	return out
}

func testApprovalOpenIdempotent(t *testing.T, s store.Store) {
	a := s.Approvals()
	t0 := approvalT0()
	r := newApproval("t", t0)
	notes := []*store.Notification{newNote(r, "request", "slack", time.Time{}), newNote(r, "reminder", "slack", r.ReminderAt)}
	orig := *r
	created, err := a.OpenRequest(ctx(t), r, notes)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, orig, *r, "OpenRequest must not modify its input")

	got, err := a.GetRequest(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
	require.Equal(t, r, got, "round trip, open: no ResolvedAt, no Outcome")
	ns := notesByKind(t, s, "t", r.ProposalID)
	require.Len(t, ns, 2)
	require.Equal(t, r.ReminderAt, ns["reminder@slack"].NotBefore)
	require.Equal(t, r.ReminderAt, ns["reminder@slack"].NextAttemptAt)
	require.JSONEq(t, string(notes[0].Payload), string(ns["request@slack"].Payload))
	require.Zero(t, ns["request@slack"].Attempts)
	require.True(t, ns["request@slack"].SentAt.IsZero())

	// The coordinator asks again after a crash, even with other fields: nothing changes.
	again := *r
	again.Summary, again.ApprovalsNeeded = "something else", 5
	created, err = a.OpenRequest(ctx(t), &again, []*store.Notification{newNote(r, "request", "email", time.Time{})})
	require.NoError(t, err)
	require.False(t, created)
	got, err = a.GetRequest(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
	require.Equal(t, r, got)
	require.Len(t, notesByKind(t, s, "t", r.ProposalID), 2, "a repeated OpenRequest enqueues nothing")

	// Invalid inputs write nothing.
	other := newApproval("t", t0)
	for name, bad := range map[string]func(r *store.ApprovalRequest, n *store.Notification){
		"no tenant":        func(r *store.ApprovalRequest, _ *store.Notification) { r.TenantID = "" },
		"no approvals":     func(r *store.ApprovalRequest, _ *store.Notification) { r.ApprovalsNeeded = 0 },
		"no deadline":      func(r *store.ApprovalRequest, _ *store.Notification) { r.Deadline = time.Time{} },
		"NUL summary":      func(r *store.ApprovalRequest, _ *store.Notification) { r.Summary = "a\x00b" },
		"note of other":    func(_ *store.ApprovalRequest, n *store.Notification) { n.ProposalID = NewID() },
		"note no channel":  func(_ *store.ApprovalRequest, n *store.Notification) { n.Channel = "" },
		"note not object":  func(_ *store.ApprovalRequest, n *store.Notification) { n.Payload = []byte(`[1]`) },
		"note no event id": func(_ *store.ApprovalRequest, n *store.Notification) { n.EventID = "" },
	} {
		rr := *other
		n := newNote(other, "request", "slack", time.Time{})
		bad(&rr, n)
		_, err := a.OpenRequest(ctx(t), &rr, []*store.Notification{n})
		require.ErrorIs(t, err, store.ErrInvalid, name)
	}
	_, err = a.GetRequest(ctx(t), "t", other.ProposalID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testApprovalTenantScope(t *testing.T, s store.Store) {
	a := s.Approvals()
	t0 := approvalT0()
	r := newApproval("t1", t0)
	_, err := a.OpenRequest(ctx(t), r, []*store.Notification{newNote(r, "request", "slack", time.Time{})})
	require.NoError(t, err)

	_, err = a.GetRequest(ctx(t), "t2", r.ProposalID)
	require.ErrorIs(t, err, store.ErrNotFound)
	open, err := a.ListOpen(ctx(t), "t2", 0)
	require.NoError(t, err)
	require.Empty(t, open)
	ns, err := a.ListNotifications(ctx(t), "t2", r.ProposalID)
	require.NoError(t, err)
	require.Empty(t, ns)
	require.ErrorIs(t, a.Resolve(ctx(t), "t2", r.ProposalID, store.OutcomeApproved, t0, nil), store.ErrNotFound)

	// The same proposal id in another tenant is another request.
	r2 := *r
	r2.TenantID = "t2"
	created, err := a.OpenRequest(ctx(t), &r2, nil)
	require.NoError(t, err)
	require.True(t, created)
	require.NoError(t, a.Resolve(ctx(t), "t2", r.ProposalID, store.OutcomeDenied, t0, nil))
	got, err := a.GetRequest(ctx(t), "t1", r.ProposalID)
	require.NoError(t, err)
	require.Empty(t, got.Outcome, "resolving t2's request leaves t1's open")
	open, err = a.ListOpen(ctx(t), "t1", 0)
	require.NoError(t, err)
	require.Len(t, open, 1)
	require.Equal(t, r.ProposalID, open[0].ProposalID)
}

func testApprovalResolveOnce(t *testing.T, s store.Store) {
	a := s.Approvals()
	t0 := approvalT0()
	var rs []*store.ApprovalRequest
	for i := range 3 {
		r := newApproval("t", t0.Add(time.Duration(i)*time.Second))
		r.Deadline = t0.Add(time.Duration(10-i) * time.Minute) // the newest is due first
		r.ReminderAt = time.Time{}
		_, err := a.OpenRequest(ctx(t), r, nil)
		require.NoError(t, err)
		rs = append(rs, r)
	}
	open, err := a.ListOpen(ctx(t), "t", 0)
	require.NoError(t, err)
	require.Equal(t, []string{rs[0].ProposalID, rs[1].ProposalID, rs[2].ProposalID},
		[]string{open[0].ProposalID, open[1].ProposalID, open[2].ProposalID}, "oldest first")
	due, err := a.ListOpenAll(ctx(t), t0.Add(9*time.Minute), 0)
	require.NoError(t, err)
	require.Len(t, due, 2, "deadlines at 8 and 9 minutes are due, 10 is not")
	require.Equal(t, rs[2].ProposalID, due[0].ProposalID, "earliest deadline first")

	at := t0.Add(time.Minute + 123*time.Nanosecond)
	r := rs[1]
	resolved := newNote(r, "resolved", "slack", time.Time{})
	require.NoError(t, a.Resolve(ctx(t), "t", r.ProposalID, store.OutcomeApproved, at, []*store.Notification{resolved}))
	got, err := a.GetRequest(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
	require.Equal(t, store.OutcomeApproved, got.Outcome)
	require.Equal(t, at.Truncate(time.Microsecond), got.ResolvedAt)

	// A second Resolve is a conflict and changes nothing (not even its notes).
	late := newNote(r, "resolved", "email", time.Time{})
	err = a.Resolve(ctx(t), "t", r.ProposalID, store.OutcomeDenied, at.Add(time.Minute), []*store.Notification{late})
	require.ErrorIs(t, err, store.ErrConflict)
	again, err := a.GetRequest(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
	require.Equal(t, got, again)
	ns := notesByKind(t, s, "t", r.ProposalID)
	require.Contains(t, ns, "resolved@slack")
	require.NotContains(t, ns, "resolved@email")

	open, err = a.ListOpen(ctx(t), "t", 0)
	require.NoError(t, err)
	require.Len(t, open, 2)
	due, err = a.ListOpenAll(ctx(t), t0.Add(time.Hour), 0)
	require.NoError(t, err)
	for _, d := range due {
		require.NotEqual(t, r.ProposalID, d.ProposalID, "a resolved request is not due")
	}
	require.ErrorIs(t, a.Resolve(ctx(t), "t", NewID(), store.OutcomeExpired, at, nil), store.ErrNotFound)
	require.ErrorIs(t, a.Resolve(ctx(t), "t", rs[0].ProposalID, "MAYBE", at, nil), store.ErrInvalid)

	// A due reminder makes an open request due before its deadline.
	rem := newApproval("t", t0)
	rem.ReminderAt, rem.Deadline = t0.Add(time.Minute), t0.Add(48*time.Hour)
	_, err = a.OpenRequest(ctx(t), rem, nil)
	require.NoError(t, err)
	due, err = a.ListOpenAll(ctx(t), t0.Add(2*time.Minute), 0)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, rem.ProposalID, due[0].ProposalID)
}

func testApprovalResolveCancelsReminders(t *testing.T, s store.Store) {
	a := s.Approvals()
	t0 := approvalT0()
	r := newApproval("t", t0)
	_, err := a.OpenRequest(ctx(t), r, []*store.Notification{
		newNote(r, "request", "slack", time.Time{}),
		newNote(r, "reminder", "slack", r.ReminderAt),
		newNote(r, "escalation", "email", r.ReminderAt),
	})
	require.NoError(t, err)
	other := newApproval("t", t0) // another proposal's reminder stays
	_, err = a.OpenRequest(ctx(t), other, []*store.Notification{newNote(other, "reminder", "slack", other.ReminderAt)})
	require.NoError(t, err)

	now := time.Now().UTC().Add(time.Second)
	claimed, err := a.ClaimDue(ctx(t), "d1", now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1, "only the request is due before the reminder time")
	require.Equal(t, "request", claimed[0].Kind)
	require.NoError(t, a.MarkSent(ctx(t), claimed[0].Seq, "d1", now))

	require.NoError(t, a.Resolve(ctx(t), "t", r.ProposalID, store.OutcomeDenied, now,
		[]*store.Notification{newNote(r, "resolved", "slack", time.Time{})}))
	ns := notesByKind(t, s, "t", r.ProposalID)
	require.Len(t, ns, 4)
	for _, k := range []string{"reminder@slack", "escalation@email"} {
		require.False(t, ns[k].DeadAt.IsZero(), "%s is cancelled", k)
		require.Equal(t, store.CancelledResolved, ns[k].LastError)
		require.True(t, ns[k].SentAt.IsZero())
	}
	require.False(t, ns["request@slack"].SentAt.IsZero(), "a sent notification stays sent")
	require.True(t, ns["request@slack"].DeadAt.IsZero())

	// Long after the reminder time only the resolved message and the other proposal's reminder are due.
	later := t0.Add(2 * time.Hour)
	claimed, err = a.ClaimDue(ctx(t), "d1", later, later.Add(time.Minute), 10)
	require.NoError(t, err)
	var got []string
	for _, n := range claimed {
		got = append(got, n.ProposalID+"/"+n.Kind)
	}
	require.ElementsMatch(t, []string{r.ProposalID + "/resolved", other.ProposalID + "/reminder"}, got)
}

// testApprovalInTx: the accessor works on a tx Store, and a rollback undoes it all.
func testApprovalInTx(t *testing.T, s store.Store) {
	t0 := approvalT0()
	r := newApproval("t", t0)
	boom := errors.New("boom")
	var created bool
	var inTx error
	err := s.InTx(ctx(t), func(tx store.Store) error {
		// No require here: on SQLite fn runs on the store's committer goroutine.
		if created, inTx = tx.Approvals().OpenRequest(ctx(t), r, []*store.Notification{newNote(r, "request", "slack", time.Time{})}); inTx != nil {
			return inTx
		}
		if _, inTx = tx.Approvals().GetRequest(ctx(t), "t", r.ProposalID); inTx != nil {
			return inTx
		}
		return boom
	})
	require.NoError(t, inTx)
	require.True(t, created)
	require.ErrorIs(t, err, boom)
	_, err = s.Approvals().GetRequest(ctx(t), "t", r.ProposalID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Empty(t, notesByKind(t, s, "t", r.ProposalID))

	require.NoError(t, s.InTx(ctx(t), func(tx store.Store) error {
		_, err := tx.Approvals().OpenRequest(ctx(t), r, nil)
		return err
	}))
	_, err = s.Approvals().GetRequest(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
}

func testNotificationEnqueueDuplicates(t *testing.T, s store.Store) {
	a := s.Approvals()
	r := newApproval("t", approvalT0())
	n := newNote(r, "request", "slack", time.Time{})
	require.NoError(t, a.Enqueue(ctx(t), []*store.Notification{n}))
	require.NoError(t, a.Enqueue(ctx(t), []*store.Notification{n, newNote(r, "request", "email", time.Time{})}),
		"a duplicate (event, channel) is ignored, not an error")
	ns, err := a.ListNotifications(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
	require.Len(t, ns, 2)
	require.Equal(t, "slack", ns[0].Channel)
	require.Equal(t, "email", ns[1].Channel)
	require.Less(t, ns[0].Seq, ns[1].Seq)
	require.ErrorIs(t, a.Enqueue(ctx(t), []*store.Notification{{EventID: "x"}}), store.ErrInvalid)
}

func testNotificationClaimLease(t *testing.T, s store.Store) {
	a := s.Approvals()
	r := newApproval("t", approvalT0())
	require.NoError(t, a.Enqueue(ctx(t), []*store.Notification{
		newNote(r, "k1", "slack", time.Time{}), newNote(r, "k2", "slack", time.Time{}), newNote(r, "k3", "slack", time.Time{}),
		newNote(r, "k4", "slack", time.Now().Add(time.Hour)), // not yet
	}))
	now := time.Now().UTC().Add(time.Second).Truncate(time.Microsecond)
	lease := now.Add(30 * time.Second)

	first, err := a.ClaimDue(ctx(t), "a", now, lease, 2)
	require.NoError(t, err)
	require.Len(t, first, 2)
	for _, n := range first {
		require.Equal(t, "a", n.LeaseOwner)
		require.Equal(t, lease, n.LeaseUntil)
		require.Equal(t, 1, n.Attempts)
	}
	require.Equal(t, []string{"k1", "k2"}, []string{first[0].Kind, first[1].Kind}, "oldest first")
	second, err := a.ClaimDue(ctx(t), "b", now, lease, 10)
	require.NoError(t, err)
	require.Len(t, second, 1, "b never gets a row a holds")
	require.Equal(t, "k3", second[0].Kind)
	none, err := a.ClaimDue(ctx(t), "b", now.Add(29*time.Second), lease, 10)
	require.NoError(t, err)
	require.Empty(t, none, "leased rows are not claimed before the lease ends, not-before rows are not due")

	// a's lease ends: b takes k1 and k2, and a can no longer settle them.
	after := lease.Add(time.Second)
	taken, err := a.ClaimDue(ctx(t), "b", after, after.Add(30*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, taken, 3, "k1, k2 from a and k3 from b itself: every expired lease")
	require.Equal(t, 2, taken[0].Attempts)
	k1 := taken[0].Seq
	require.ErrorIs(t, a.MarkSent(ctx(t), k1, "a", after), store.ErrConflict, "a non-owner cannot mark sent")
	require.ErrorIs(t, a.MarkFailed(ctx(t), k1, "a", "x", after, false), store.ErrConflict)
	require.NoError(t, a.MarkSent(ctx(t), k1, "b", after))
	require.ErrorIs(t, a.MarkSent(ctx(t), k1, "b", after), store.ErrConflict, "sent once")
	require.ErrorIs(t, a.MarkSent(ctx(t), 1<<40, "b", after), store.ErrNotFound)

	// A failure ends the lease; the row is due again at nextAttempt, not before.
	k2 := taken[1].Seq
	long := strings.Repeat("é", 600)
	next := after.Add(time.Minute)
	require.NoError(t, a.MarkFailed(ctx(t), k2, "b", long, next, false))
	early, err := a.ClaimDue(ctx(t), "c", next.Add(-time.Second), next.Add(time.Hour), 10)
	require.NoError(t, err)
	for _, n := range early {
		require.NotEqual(t, k2, n.Seq, "not due before nextAttempt")
	}
	retry, err := a.ClaimDue(ctx(t), "c", next, next.Add(time.Minute), 10)
	require.NoError(t, err)
	var got *store.Notification
	for _, n := range retry {
		if n.Seq == k2 {
			got = n
		}
	}
	require.NotNil(t, got, "due again at nextAttempt")
	require.Equal(t, 3, got.Attempts)
	require.Equal(t, store.MaxNotificationError, len([]rune(got.LastError)), "the error text is bounded")

	// Dead: never claimed again; sent: never claimed again.
	require.NoError(t, a.MarkFailed(ctx(t), k2, "c", "rejected", time.Time{}, true))
	end := next.Add(24 * time.Hour)
	rest, err := a.ClaimDue(ctx(t), "d", end, end.Add(time.Minute), 10)
	require.NoError(t, err)
	var kinds []string
	for _, n := range rest {
		kinds = append(kinds, n.Kind)
	}
	require.ElementsMatch(t, []string{"k3", "k4"}, kinds, "k1 sent and k2 dead are never claimed again")
	ns := notesByKind(t, s, "t", r.ProposalID)
	require.False(t, ns["k2@slack"].DeadAt.IsZero())
	require.Equal(t, "rejected", ns["k2@slack"].LastError)
	require.Equal(t, after, ns["k1@slack"].SentAt)

	_, err = a.ClaimDue(ctx(t), "", now, lease, 1)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = a.ClaimDue(ctx(t), "a", now, now, 1)
	require.ErrorIs(t, err, store.ErrInvalid, "a lease must end after now")
}

// testNotificationClaimConcurrent: two claimers racing over 200 rows get disjoint sets
// that together are every row.
func testNotificationClaimConcurrent(t *testing.T, s store.Store) {
	const n = 200
	r := newApproval("t", approvalT0())
	notes := make([]*store.Notification, n)
	for i := range notes {
		notes[i] = newNote(r, "k", "c", time.Time{})
		notes[i].EventID = NewID()
	}
	require.NoError(t, s.Approvals().Enqueue(ctx(t), notes))
	now := time.Now().UTC().Add(time.Second)
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for _, owner := range []string{"a", "b"} {
		wg.Go(func() {
			for {
				got, err := s.Approvals().ClaimDue(context.Background(), owner, now, now.Add(time.Minute), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, x := range got {
					if prev, dup := seen[x.Seq]; dup {
						t.Errorf("notification %d claimed by %s and %s", x.Seq, prev, owner)
					}
					seen[x.Seq] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, seen, n, "every notification claimed exactly once")
}

func testApprovalMarkReminded(t *testing.T, s store.Store) {
	a := s.Approvals()
	t0 := approvalT0()
	r := newApproval("t", t0) // reminder at 45 min, deadline at 60 min
	_, err := a.OpenRequest(ctx(t), r, nil)
	require.NoError(t, err)
	due, err := a.ListOpenAll(ctx(t), t0.Add(50*time.Minute), 0)
	require.NoError(t, err)
	require.Len(t, due, 1, "due for its reminder")

	require.ErrorIs(t, a.MarkReminded(ctx(t), "t2", r.ProposalID, nil), store.ErrNotFound)
	require.NoError(t, a.MarkReminded(ctx(t), "t", r.ProposalID, []*store.Notification{newNote(r, "reminder", "slack", time.Time{})}))
	got, err := a.GetRequest(ctx(t), "t", r.ProposalID)
	require.NoError(t, err)
	require.True(t, got.ReminderAt.IsZero())
	require.Contains(t, notesByKind(t, s, "t", r.ProposalID), "reminder@slack")
	due, err = a.ListOpenAll(ctx(t), t0.Add(50*time.Minute), 0)
	require.NoError(t, err)
	require.Empty(t, due, "no longer due before its deadline")
	due, err = a.ListOpenAll(ctx(t), t0.Add(time.Hour), 0)
	require.NoError(t, err)
	require.Len(t, due, 1, "due again at its deadline")

	err = a.MarkReminded(ctx(t), "t", r.ProposalID, []*store.Notification{newNote(r, "escalation", "email", time.Time{})})
	require.ErrorIs(t, err, store.ErrConflict, "reminded once")
	require.NotContains(t, notesByKind(t, s, "t", r.ProposalID), "escalation@email", "a refused MarkReminded enqueues nothing")
}
