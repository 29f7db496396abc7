package hil

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/storetest"
)

func dlvStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// dlvClock is a fake clock.
type dlvClock struct {
	mu sync.Mutex
	t  time.Time
}

func dlvNewClock() *dlvClock {
	// After the store clock, so rows enqueued with NotBefore zero are due.
	return &dlvClock{t: time.Now().UTC().Add(time.Second).Truncate(time.Microsecond)}
}

func (c *dlvClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *dlvClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// dlvOpen opens an approval request for a fresh proposal of tenant "t" with a request
// message on each channel, and returns the messages.
func dlvOpen(t *testing.T, st store.Store, channels ...string) []notify.Message {
	t.Helper()
	pid := storetest.NewID()
	deadline := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	m := notify.Message{
		EventID: pid + "/" + notify.KindRequest, Kind: notify.KindRequest, TenantID: "t", ProposalID: pid,
		Impact: "high", Summary: "scale web in eu-west", Deadline: deadline, ApprovalsNeeded: 2,
		Link: "https://fabric.example/approvals/" + pid,
	}
	var notes []*store.Notification
	var out []notify.Message
	for _, ch := range channels {
		n, err := NewNotification(m, ch, time.Time{})
		require.NoError(t, err)
		notes = append(notes, n)
		out = append(out, m)
	}
	created, err := st.Approvals().OpenRequest(t.Context(), &store.ApprovalRequest{
		TenantID: "t", ProposalID: pid, Impact: m.Impact, Summary: m.Summary, ApprovalsNeeded: 2, Deadline: deadline,
	}, notes)
	require.NoError(t, err)
	require.True(t, created)
	return out
}

// dlvRows returns the outbox rows of proposal pid.
func dlvRows(t *testing.T, st store.Store, pid string) []*store.Notification {
	t.Helper()
	ns, err := st.Approvals().ListNotifications(t.Context(), "t", pid)
	require.NoError(t, err)
	return ns
}

// dlvScripted fails its first failures sends with err, then records.
type dlvScripted struct {
	notify.Simulated
	mu       sync.Mutex
	calls    int
	failures int
	err      error
}

func (c *dlvScripted) Send(ctx context.Context, m notify.Message) error {
	c.mu.Lock()
	c.calls++
	fail := c.calls <= c.failures
	c.mu.Unlock()
	if fail {
		return c.err
	}
	return c.Simulated.Send(ctx, m)
}

func (c *dlvScripted) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// dlvBlocking blocks the send of event block until its context ends; others are recorded.
type dlvBlocking struct {
	notify.Simulated
	block   string
	started chan struct{}
}

func (c *dlvBlocking) Send(ctx context.Context, m notify.Message) error {
	if m.EventID == c.block {
		close(c.started)
		<-ctx.Done()
		return ctx.Err()
	}
	return c.Simulated.Send(ctx, m)
}

func dlvEventIDs(ms []notify.Message) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.EventID]++
	}
	return out
}

func TestDeliverEveryNotificationOnce(t *testing.T) {
	st := dlvStore(t)
	slack, email := &notify.Simulated{}, &notify.Simulated{}
	var want []notify.Message
	var pids []string
	for range 10 {
		ms := dlvOpen(t, st, "slack", "email")
		want = append(want, ms[0])
		pids = append(pids, ms[0].ProposalID)
	}
	d := NewDeliverer(st.Approvals(), map[string]notify.Channel{"slack": slack, "email": email},
		DeliveryOptions{Owner: "d1", Poll: 10 * time.Millisecond, Batch: 3})
	d.Start()
	d.Kick()
	require.Eventually(t, func() bool { return len(slack.Sent()) >= 10 && len(email.Sent()) >= 10 },
		5*time.Second, 5*time.Millisecond)
	// Let the loop run a few more polls: nothing is sent twice.
	time.Sleep(50 * time.Millisecond)
	d.Stop()

	require.ElementsMatch(t, want, slack.Sent(), "every message, decoded intact, exactly once")
	require.ElementsMatch(t, want, email.Sent())
	for _, pid := range pids {
		for _, n := range dlvRows(t, st, pid) {
			require.False(t, n.SentAt.IsZero(), "row %d is marked sent", n.Seq)
			require.Equal(t, 1, n.Attempts)
			require.True(t, n.DeadAt.IsZero())
		}
	}
	n, err := d.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due once everything is sent")
}

func TestDeliverRetriesWithBackoff(t *testing.T) {
	st := dlvStore(t)
	clock := dlvNewClock()
	t0 := clock.Now()
	ch := &dlvScripted{failures: 2, err: errors.New(`Post "https://api.telegram.org/bot123456:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ZS/sendMessage": connection refused`)}
	msgs := dlvOpen(t, st, "telegram")
	d := NewDeliverer(st.Approvals(), map[string]notify.Channel{"telegram": ch}, DeliveryOptions{
		Owner: "d1", Now: clock.Now, Backoff: func(attempt int) time.Duration { return time.Duration(attempt) * time.Minute },
	})

	n, err := d.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	row := dlvRows(t, st, msgs[0].ProposalID)[0]
	require.True(t, row.SentAt.IsZero())
	require.True(t, row.DeadAt.IsZero())
	require.Equal(t, t0.Add(time.Minute), row.NextAttemptAt, "first retry after Backoff(1)")
	require.Contains(t, row.LastError, "api.telegram.org")
	require.NotContains(t, row.LastError, "AAEhBOweik6ad9r", "the bot token never reaches the store")
	require.NotContains(t, row.LastError, "123456:")

	clock.Set(t0.Add(59 * time.Second))
	n, err = d.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "not retried before the backoff has passed")
	require.Equal(t, 1, ch.Calls())

	clock.Set(t0.Add(time.Minute))
	n, err = d.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	row = dlvRows(t, st, msgs[0].ProposalID)[0]
	require.Equal(t, t0.Add(3*time.Minute), row.NextAttemptAt, "second retry after Backoff(2)")

	clock.Set(t0.Add(3 * time.Minute))
	n, err = d.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, msgs, ch.Sent(), "sent once, on the third attempt")
	require.Equal(t, 3, ch.Calls())
	row = dlvRows(t, st, msgs[0].ProposalID)[0]
	require.Equal(t, t0.Add(3*time.Minute), row.SentAt)
	require.Equal(t, 3, row.Attempts)

	clock.Set(t0.Add(time.Hour))
	n, err = d.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 3, ch.Calls())
}

func TestDeliverGivesUp(t *testing.T) {
	st := dlvStore(t)
	clock := dlvNewClock()
	perm := &dlvScripted{failures: 1 << 30, err: &notify.PermanentError{Err: errors.New("chat not found")}}
	flaky := &dlvScripted{failures: 1 << 30, err: errors.New("503 service unavailable")}
	permMsg := dlvOpen(t, st, "perm")[0]
	flakyMsg := dlvOpen(t, st, "flaky")[0]
	unknownMsg := dlvOpen(t, st, "pigeon")[0]
	reg := prometheus.NewRegistry()
	d := NewDeliverer(st.Approvals(), map[string]notify.Channel{"perm": perm, "flaky": flaky}, DeliveryOptions{
		Owner: "d1", Now: clock.Now, MaxAttempts: 3, Backoff: func(int) time.Duration { return time.Second }, Registerer: reg,
	})

	for i := range 10 {
		clock.Set(clock.Now().Add(time.Minute))
		_, err := d.DeliverDue(t.Context())
		require.NoError(t, err, "round %d", i)
	}
	require.Equal(t, 1, perm.Calls(), "a permanent error is never retried")
	require.Equal(t, 3, flaky.Calls(), "a transient error is retried up to MaxAttempts")

	dead := func(m notify.Message) *store.Notification {
		rows := dlvRows(t, st, m.ProposalID)
		require.Len(t, rows, 1)
		require.False(t, rows[0].DeadAt.IsZero(), "%s is dead", m.ProposalID)
		require.True(t, rows[0].SentAt.IsZero())
		return rows[0]
	}
	require.Contains(t, dead(permMsg).LastError, "chat not found")
	require.Equal(t, 1, dead(permMsg).Attempts)
	require.Contains(t, dead(flakyMsg).LastError, "503")
	require.Equal(t, 3, dead(flakyMsg).Attempts)
	require.Contains(t, dead(unknownMsg).LastError, `unknown channel "pigeon"`)

	for labels, want := range map[[2]string]float64{
		{"perm", resultDead}: 1, {"perm", resultRetry}: 0, {"perm", resultSent}: 0,
		{"flaky", resultRetry}: 2, {"flaky", resultDead}: 1,
		{"unknown", resultDead}: 1,
	} {
		got := testutil.ToFloat64(d.results.WithLabelValues(labels[0], labels[1]))
		require.Equal(t, want, got, "fabric_hil_notifications_total%v", labels)
	}
}

func TestDeliverTwoDeliverersSendOnce(t *testing.T) {
	st := dlvStore(t)
	sim := &notify.Simulated{}
	var want []string
	for range 60 {
		for _, m := range dlvOpen(t, st, "sim") {
			want = append(want, m.EventID)
		}
	}
	var ds []*Deliverer
	for _, owner := range []string{"d1", "d2"} {
		d := NewDeliverer(st.Approvals(), map[string]notify.Channel{"sim": sim},
			DeliveryOptions{Owner: owner, Poll: 5 * time.Millisecond, Batch: 4})
		ds = append(ds, d)
	}
	for _, d := range ds {
		d.Start()
	}
	require.Eventually(t, func() bool { return len(sim.Sent()) >= len(want) }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	for _, d := range ds {
		d.Stop()
	}
	got := dlvEventIDs(sim.Sent())
	require.Len(t, got, len(want))
	for _, id := range want {
		require.Equal(t, 1, got[id], "event %s sent exactly once", id)
	}
}

func TestDeliverStoppedMidSendResumesAfterLease(t *testing.T) {
	st := dlvStore(t)
	clock := dlvNewClock()
	t0 := clock.Now()
	ok := dlvOpen(t, st, "c")[0]
	stuck := dlvOpen(t, st, "c")[0]
	blocking := &dlvBlocking{block: stuck.EventID, started: make(chan struct{})}
	d1 := NewDeliverer(st.Approvals(), map[string]notify.Channel{"c": blocking},
		DeliveryOptions{Owner: "d1", Now: clock.Now, Lease: 30 * time.Second, Poll: 5 * time.Millisecond})
	d1.Start()
	select {
	case <-blocking.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocking send never started")
	}
	require.Eventually(t, func() bool { return !dlvRows(t, st, ok.ProposalID)[0].SentAt.IsZero() },
		5*time.Second, 5*time.Millisecond, "the other message is sent and marked")
	stopped := make(chan struct{})
	go func() { d1.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return while a send blocked")
	}
	row := dlvRows(t, st, stuck.ProposalID)[0]
	require.True(t, row.SentAt.IsZero())
	require.True(t, row.DeadAt.IsZero(), "an abandoned send is not a failure")
	require.Equal(t, "d1", row.LeaseOwner)
	require.Equal(t, t0.Add(30*time.Second), row.LeaseUntil, "left to its lease")

	sim := &notify.Simulated{}
	d2 := NewDeliverer(st.Approvals(), map[string]notify.Channel{"c": sim}, DeliveryOptions{Owner: "d2", Now: clock.Now})
	clock.Set(t0.Add(29 * time.Second))
	n, err := d2.DeliverDue(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "nothing is claimed while d1's lease lives")

	clock.Set(t0.Add(31 * time.Second))
	for range 3 {
		_, err := d2.DeliverDue(t.Context())
		require.NoError(t, err)
	}
	require.Equal(t, []notify.Message{stuck}, sim.Sent(), "the abandoned message is sent once; the sent one is not sent again")
	require.Equal(t, []notify.Message{ok}, blocking.Sent())
	row = dlvRows(t, st, stuck.ProposalID)[0]
	require.False(t, row.SentAt.IsZero())
	require.Equal(t, 2, row.Attempts)
}

func TestDeliverSafeErrorText(t *testing.T) {
	for in, want := range map[string]string{
		`Post "https://hooks.slack.com/services/T000/B000/XXXXSECRET": EOF`: `Post "https://hooks.slack.com/…": EOF`,
		"smtp://user:pa55@mail.example:587/x refused":                       "smtp://mail.example/… refused",
		"token bot1234567:ABCDEFGHIJKLMNOP leaked":                          "token bot<redacted> leaked",
		"plain failure": "plain failure",
	} {
		require.Equal(t, want, safeErrorText(errors.New(in)), in)
	}
}
