package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/decision-fabric/fabric/internal/store"
)

func TestNewDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 123, time.UTC)
	e, err := New("t1", "p1", "NEGOTIATING", "EXPIRED", strings.Repeat("é", MaxReason), 3, at)
	require.NoError(t, err)
	require.Equal(t, "p1:3", e.EventID)
	ev, err := Decode(e.Payload)
	require.NoError(t, err)
	require.Equal(t, "p1:3", ev.GetEventId())
	require.Equal(t, "NEGOTIATING", ev.GetFromState())
	require.Equal(t, "EXPIRED", ev.GetToState())
	require.Equal(t, int64(3), ev.GetVersion())
	require.True(t, ev.GetOccurredAt().AsTime().Equal(at))
	require.LessOrEqual(t, len(ev.GetReason()), MaxReason, "reason bounded")
	require.True(t, utf8.ValidString(ev.GetReason()), "cut at a character boundary")
	_, err = New("t1", "p1", "", "SUBMITTED", "bad \xff utf-8", 1, at)
	require.NoError(t, err, "invalid UTF-8 in a reason is replaced, not an error")

	rec := Record("topic", e)
	require.Equal(t, []byte("p1"), rec.Key)
	require.Equal(t, []kgo.RecordHeader{{Key: HeaderEventID, Value: []byte("p1:3")}, {Key: HeaderContentType, Value: []byte(ContentType)}}, rec.Headers)

	for _, bad := range [][]byte{{0xff}, make([]byte, store.MaxEventPayload+1), {}} {
		_, err := Decode(bad)
		require.ErrorIs(t, err, ErrInvalid)
	}
	other, err := New("t1", "p2", "", "SUBMITTED", "", 1, at)
	require.NoError(t, err)
	forged := append(append([]byte{}, other.Payload...), 0x38, 0x05) // version 5 appended: id no longer matches
	_, err = Decode(forged)
	require.ErrorIs(t, err, ErrInvalid)
}

// FuzzDecode: any record value decodes without panic; what decodes is a well-formed
// event that encodes back to an event that decodes the same.
func FuzzDecode(f *testing.F) {
	e, _ := New("t1", "p1", "AGREED", "SCORED", "why", 4, time.Unix(1, 2))
	f.Add(e.Payload)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, value []byte) {
		ev, err := Decode(value)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		again, err := New(ev.GetTenantId(), ev.GetProposalId(), ev.GetFromState(), ev.GetToState(), ev.GetReason(), ev.GetVersion(), ev.GetOccurredAt().AsTime())
		if err != nil {
			return // over the size bound once re-encoded with defaults: refused, not stored
		}
		back, err := Decode(again.Payload)
		if err != nil || back.GetEventId() != ev.GetEventId() || back.GetToState() != ev.GetToState() {
			t.Fatalf("round trip: %v %v", back, err)
		}
	})
}

// BenchmarkRelay publishes a backlog through the relay (claim, produce, wait for the
// acknowledgements, delete) to a kfake broker, beside the floor: the same records
// produced with a bare kgo client to the same broker, in the same run.
func BenchmarkRelay(b *testing.B) {
	const proposals, per = 200, 5
	c := newCluster(b, 3)
	st := openStore(b, store.BackendSQLite)
	var relayDur, bareDur time.Duration
	events := 0
	for range b.N {
		stage(b, st, proposals, per)
		r := newRelay(b, st, c, fmt.Sprintf("bench-%d", events))
		start := time.Now()
		for {
			if r.Sweep(context.Background()) == 0 {
				n, _, err := st.EventOutbox().Backlog(context.Background())
				require.NoError(b, err)
				if n == 0 {
					break
				}
			}
		}
		relayDur += time.Since(start)
		r.Close()

		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
		require.NoError(b, err)
		recs := make([]*kgo.Record, 0, proposals*per)
		for i := range proposals * per {
			e, err := New("t1", fmt.Sprintf("p%d", i%proposals), "S", "T", "", int64(i/proposals+1), time.Now())
			require.NoError(b, err)
			recs = append(recs, Record(testTopic, e))
		}
		start = time.Now()
		var wg sync.WaitGroup
		wg.Add(len(recs))
		for _, rec := range recs {
			cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
		bareDur += time.Since(start)
		cl.Close()
		events += proposals * per
	}
	b.ReportMetric(float64(events)/relayDur.Seconds(), "events/s")
	b.ReportMetric(float64(events)/bareDur.Seconds(), "floor-bare-produce-events/s")
}
