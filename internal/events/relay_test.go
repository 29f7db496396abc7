package events

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/decision-fabric/fabric/internal/kafkaurl"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testTopic = "decision-fabric.lifecycle"

func openStore(t testing.TB, backend string) store.Store {
	t.Helper()
	cfg := store.Config{DataDir: t.TempDir()}
	if backend == store.BackendPostgres {
		cfg = store.Config{PostgresDSN: pgtest.NewDSN(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newCluster(t testing.TB, partitions int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), testTopic))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func newRelay(t testing.TB, st store.Store, c *kfake.Cluster, owner string) *Relay {
	t.Helper()
	tgt, _ := kafkaurl.Parse(c.ListenAddrs()[0])
	client, err := NewProducer(tgt, "test-"+owner, kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
		kgo.RecordDeliveryTimeout(time.Second))
	require.NoError(t, err)
	r, err := NewRelay(Config{Store: st, Client: client, Topic: testTopic, Owner: owner, Lease: 5 * time.Second,
		Timeout: time.Second, Interval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// stage adds versions 1..per of proposals fresh proposals, interleaved as the
// coordinator would commit them.
func stage(t testing.TB, st store.Store, proposals, per int) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	ids := make([]string, proposals)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%03d-%d", i, time.Now().UnixNano())
	}
	for v := 1; v <= per; v++ {
		for _, id := range ids {
			e, err := New("t1", id, "S", "T", "", int64(v), time.Now())
			require.NoError(t, err)
			_, err = st.EventOutbox().Add(context.Background(), e)
			require.NoError(t, err)
			want[id] = int64(v)
		}
	}
	return want
}

// consumed is the topic as a consumer sees it.
type consumed struct {
	raw   int                       // records read
	dups  int                       // records whose event id was seen before
	order map[string][]int64        // per proposal, versions in the order first seen
	seen  map[string]map[string]int // per proposal, event id -> count
}

// consume reads the topic until every proposal's events up to want arrived (or the
// deadline), checking each record's key, headers and body.
func consume(t *testing.T, c *kfake.Cluster, want map[string]int64, within time.Duration) consumed {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	got := consumed{order: map[string][]int64{}, seen: map[string]map[string]int{}}
	done := func() bool {
		for id, v := range want {
			if int64(len(got.order[id])) < v {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(within)
	for !done() && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			got.raw++
			ev, err := Decode(r.Value)
			require.NoError(t, err)
			require.Equal(t, ev.GetProposalId(), string(r.Key), "keyed by proposal id")
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			require.Equal(t, ev.GetEventId(), hdr[HeaderEventID], "the event id in the header and the body")
			require.Equal(t, ContentType, hdr[HeaderContentType])
			id := ev.GetProposalId()
			if got.seen[id] == nil {
				got.seen[id] = map[string]int{}
			}
			got.seen[id][ev.GetEventId()]++
			if got.seen[id][ev.GetEventId()] > 1 {
				got.dups++ // consumers drop it
				return
			}
			got.order[id] = append(got.order[id], ev.GetVersion())
		})
	}
	return got
}

// check: every event arrived, exactly once after dedupe by event id, in version order
// per proposal.
func (got consumed) check(t *testing.T, want map[string]int64) {
	t.Helper()
	require.Len(t, got.order, len(want))
	for id, v := range want {
		exp := make([]int64, v)
		for i := range exp {
			exp[i] = int64(i + 1)
		}
		require.Equal(t, exp, got.order[id], "proposal %s: every event once, in order", id)
	}
}

// dropEveryNthProduce kills the connection of every nth produce request before the
// broker handles it: the producer retries on a new connection.
func dropEveryNthProduce(c *kfake.Cluster, n int64) *atomic.Int64 {
	var count, dropped atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if count.Add(1)%n == 0 {
			dropped.Add(1)
			return nil, fmt.Errorf("connection killed by the test"), true
		}
		return nil, nil, false
	})
	return &dropped
}

// TestRelayPublishesInOrderThroughFailures publishes a backlog while the broker
// connection is killed every few produce requests, the relay is stopped mid-stream and
// a new one started, and then two relays run at once: every event arrives, in order
// per proposal, once per event id.
func TestRelayPublishesInOrderThroughFailures(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			st := openStore(t, backend)
			c := newCluster(t, 3)
			dropped := dropEveryNthProduce(c, 4)
			want := stage(t, st, 40, 6)

			a := newRelay(t, st, c, "a")
			a.Start()
			require.Eventually(t, func() bool { return a.Status().Published >= 60 }, 20*time.Second, 5*time.Millisecond)
			a.Close() // mid-stream
			left, _, err := st.EventOutbox().Backlog(context.Background())
			require.NoError(t, err)
			require.Positive(t, left, "stopped mid-stream")

			b := newRelay(t, st, c, "b")
			b.Start()
			more := stage(t, st, 20, 4)
			for id, v := range more {
				want[id] = v
			}
			b2 := newRelay(t, st, c, "b2") // a second replica on the same outbox
			b2.Start()
			require.Eventually(t, func() bool {
				n, _, err := st.EventOutbox().Backlog(context.Background())
				return err == nil && n == 0
			}, 30*time.Second, 10*time.Millisecond)

			got := consume(t, c, want, 20*time.Second)
			got.check(t, want)
			total := int64(0)
			for _, v := range want {
				total += v
			}
			require.Equal(t, total, a.Status().Published+b.Status().Published+b2.Status().Published,
				"each event recorded as published by exactly one relay (the one that deleted it)")
			require.Positive(t, dropped.Load(), "connections were killed")
			t.Logf("%s: %d events, %d raw records, %d raw duplicates (dropped by event id), %d produce connections killed; published a=%d b=%d b2=%d",
				backend, total, got.raw, got.dups, dropped.Load(), a.Status().Published, b.Status().Published, b2.Status().Published)
			// The backlog a relay reports is the one it saw at its last sweep: b's next
			// sweep (every 20 ms, unless one is still waiting on the broker) sees the
			// outbox empty.
			require.Eventually(t, func() bool { return b.Health() == "ok" }, 10*time.Second, 10*time.Millisecond, "b: %s", b.Health())
		})
	}
}

// TestRelayRetriesWithBackoffAndReports: while the broker refuses every produce
// (NOT_ENOUGH_REPLICAS, acks=all), no event is deleted and the failure shows in
// Health; once it accepts, everything goes out in order.
func TestRelayRetriesWithBackoffAndReports(t *testing.T) {
	st := openStore(t, store.BackendSQLite)
	c := newCluster(t, 1)
	var refuse atomic.Bool
	refuse.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		// The broker answers, refusing every partition (retriable).
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	want := stage(t, st, 3, 3)
	r := newRelay(t, st, c, "a")
	r.Start()
	require.Eventually(t, func() bool { return r.Status().LastError != "" }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, r.Health(), "last error")
	require.Zero(t, r.Status().Published)
	n, _, err := st.EventOutbox().Backlog(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(9), n, "nothing is deleted without an acknowledgement")
	refuse.Store(false)
	got := consume(t, c, want, 20*time.Second)
	got.check(t, want)
	require.Eventually(t, func() bool { return r.Health() == "ok" }, 10*time.Second, 10*time.Millisecond)
}

func TestBackoff(t *testing.T) {
	r := &Relay{cfg: Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second},
		[]time.Duration{r.backoff(0), r.backoff(1), r.backoff(2), r.backoff(3), r.backoff(4), r.backoff(5), r.backoff(60)})
}

// TestErrorsNeverShowSecrets: the SASL password is scrubbed from what Health shows.
func TestErrorsNeverShowSecrets(t *testing.T) {
	r := &Relay{cfg: Config{Secrets: []string{"s3cr3t"}, Topic: "x", Now: time.Now}}
	r.setErr("SASL authentication failed for fabric:s3cr3t@b:1 " + strings.Repeat("y", 1000))
	require.NotContains(t, r.Health(), "s3cr3t")
	require.Contains(t, r.Health(), "<REDACTED>")
	require.Less(t, len(r.Health()), 400, "bounded")
}
