package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/events"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// TestLifecycleEventsReachKafka runs decisions through the fabric with KAFKA_URL set
// to an in-process kfake cluster that kills the connection of every third produce
// request, and consumes the topic: every transition the coordinator committed arrives
// (one event per proposal version, SUBMITTED included), in order per proposal, once
// per event id after deduplication, its from/to states chaining, with no manifest
// content; /health reports the relay.
func TestLifecycleEventsReachKafka(t *testing.T) {
	const topic = "fabric.test.lifecycle"
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
			require.NoError(t, err)
			t.Cleanup(cluster.Close)
			var produces, killed atomic.Int64
			cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				cluster.KeepControl()
				if produces.Add(1)%3 == 0 {
					killed.Add(1)
					return nil, fmt.Errorf("connection killed by the test"), true
				}
				return nil, nil, false
			})
			files := fabrictest.InstantLowImpact(t)
			f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st, Configure: func(c *config.Config) {
				files(c)
				c.Integrations.KafkaURL = config.Secret("kafka://" + strings.Join(cluster.ListenAddrs(), ",kafka://"))
				c.Events.KafkaTopic = topic
			}})
			c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
			var ids []string
			for i := range 6 {
				p := c.submit(t, fmt.Sprintf(engineManifest, fmt.Sprintf("kafka-target-%d", i)))
				ids = append(ids, p.ID)
			}
			for i, id := range ids {
				c.await(t, id, "PROPOSAL_STATUS_SCORED")
				if i%2 == 0 {
					r := c.post(t, "/proposals/"+id+"/enact", `{}`)
					require.Equal(t, http.StatusOK, r.Status, string(r.Body))
				}
			}
			want := map[string]string{} // proposal -> final status
			versions := map[string]int64{}
			for _, id := range ids {
				p, err := f.Store().Proposals().Get(context.Background(), "t1", id)
				require.NoError(t, err)
				want[id], versions[id] = p.Status, p.Version
			}

			cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			require.NoError(t, err)
			defer cl.Close()
			seen := map[string]int{}
			order := map[string][]int64{}
			last := map[string]string{}
			raw, dups := 0, 0
			complete := func() bool {
				for id, v := range versions {
					if int64(len(order[id])) < v {
						return false
					}
				}
				return true
			}
			for deadline := time.Now().Add(30 * time.Second); !complete() && time.Now().Before(deadline); {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				fs := cl.PollFetches(ctx)
				cancel()
				fs.EachRecord(func(r *kgo.Record) {
					raw++
					require.NotContains(t, string(r.Value), "kafka-target", "no manifest content in an event")
					ev, err := events.Decode(r.Value)
					require.NoError(t, err)
					require.Equal(t, ev.GetProposalId(), string(r.Key))
					require.Equal(t, "t1", ev.GetTenantId())
					var hdr string
					for _, h := range r.Headers {
						if h.Key == events.HeaderEventID {
							hdr = string(h.Value)
						}
					}
					require.Equal(t, ev.GetEventId(), hdr)
					if seen[ev.GetEventId()]++; seen[ev.GetEventId()] > 1 {
						dups++
						return
					}
					id := ev.GetProposalId()
					require.Equal(t, last[id], ev.GetFromState(), "event %s leaves the state the previous one entered", ev.GetEventId())
					last[id] = ev.GetToState()
					order[id] = append(order[id], ev.GetVersion())
				})
			}
			total := 0
			for _, id := range ids {
				v := versions[id]
				exp := make([]int64, v)
				for i := range exp {
					exp[i] = int64(i + 1)
				}
				require.Equal(t, exp, order[id], "proposal %s: one event per committed version, in order", id)
				require.Equal(t, strings.TrimPrefix(want[id], "PROPOSAL_STATUS_"), last[id], "the last event is the proposal's state")
				total += int(v)
			}
			require.Len(t, order, len(ids), "only this run's proposals")
			require.Positive(t, killed.Load(), "connections were killed mid-stream")
			t.Logf("%s: %d proposals, %d lifecycle events, %d raw records, %d raw duplicates (dropped by event id), %d of %d produce requests killed",
				st, len(ids), total, raw, dups, killed.Load(), produces.Load())

			require.Eventually(t, func() bool {
				h := f.Do(t, http.MethodGet, fabric.Coordinator, "/health", "", "")
				var body struct {
					Checks map[string]string `json:"checks"`
				}
				return json.Unmarshal(h.Body, &body) == nil && body.Checks["event_relay"] == "ok"
			}, 10*time.Second, 50*time.Millisecond, "/health reports the relay")
		})
	}
}
