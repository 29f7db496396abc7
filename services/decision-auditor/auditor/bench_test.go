package auditor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/store"
)

// BenchmarkAppendEntries measures one AppendEntries call of 4 events, as the
// coordinator sends a decision's transition and votes (Struct payloads, each
// with its idempotency key), through the service and the audit log into
// embedded SQLite (synchronous=FULL), one call at a time. Beside it, floor is
// the bare durable insert of the same 4 rows (prebuilt, chained) through the
// same store: what the call costs beyond it is the auditor's own work. Both
// report cpu-µs/op, the process's user+system CPU time per operation.
func BenchmarkAppendEntries(b *testing.B) {
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{
		Subject: "fabric:decision-coordinator", TenantID: "bench", Roles: []string{auth.RoleService}})
	const events = 4
	b.Run("service", func(b *testing.B) {
		k, err := auditlog.GenerateKeys()
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewService(Deps{Store: openStore(b), Keys: k})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		reqs := make([]*auditorv1.AppendEntriesRequest, b.N)
		for i := range reqs {
			reqs[i] = benchRequest(b, i, events)
		}
		measure(b, func(i int) {
			out, err := s.AppendEntries(ctx, reqs[i])
			if err != nil || !out.GetResults()[0].GetCreated() {
				b.Fatal(err)
			}
		})
	})
	b.Run("floor", func(b *testing.B) {
		st := openStore(b)
		at := time.Now().UTC().Truncate(time.Microsecond)
		prev := ""
		batches := make([][]*store.AuditEntry, b.N)
		for i := range batches {
			for j := range events {
				n := int64(i*events + j)
				var buf [8]byte
				binary.BigEndian.PutUint64(buf[:], uint64(n))
				sum := sha256.Sum256(buf[:])
				e := &store.AuditEntry{TenantID: "bench", Index: n, ProposalID: "01J0000000000000000000000A",
					Event: auditlog.EventNegotiationVote, Actor: "alice", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
					PayloadSHA256: hex.EncodeToString(sum[:]), Summary: []byte(`{"region":"eu-west","round":1,"verdict":"ACCEPT"}`),
					IdempotencyKey: fmt.Sprintf("vote:%d", n), PrevHash: prev, EntryHash: hex.EncodeToString(sum[:]), CreatedAt: at}
				prev = e.EntryHash
				batches[i] = append(batches[i], e)
			}
		}
		measure(b, func(i int) {
			if err := st.InTx(context.Background(), func(tx store.Store) error {
				return tx.AuditLog().Append(context.Background(), batches[i])
			}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// benchRequest is the i-th call: a transition and three votes of one proposal.
func benchRequest(b *testing.B, i, events int) *auditorv1.AppendEntriesRequest {
	proposal := fmt.Sprintf("01J%023d", i)
	sha := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	req := &auditorv1.AppendEntriesRequest{}
	for j := range events {
		payload := map[string]any{
			"negotiation_id": "neg-" + proposal, "round": 1, "region": fmt.Sprintf("region-%d", j),
			"verdict": "ACCEPT", "reason": "within budget", "key_id": "k1", "signature_sha256": sha(proposal + "sig"),
		}
		event, key := auditlog.EventNegotiationVote, fmt.Sprintf("vote:%s:1:region-%d", proposal, j)
		if j == 0 {
			payload = map[string]any{
				"from": "NEGOTIATING", "status": "SCORED", "version": 4, "manifest_sha256": sha(proposal),
				"pre_state_sha256": sha(proposal + "pre"), "negotiation_id": "neg-" + proposal,
				"votes":      map[string]any{"accept": 5, "reject": 0, "counter": 0, "abstain": 0, "outcome": "ACCEPTED"},
				"confidence": 0.87, "risk_level": "LOW", "consensus_bundle_sha256": sha(proposal + "bundle"),
			}
			event, key = auditlog.EventProposalScored, proposal+":4:"+auditlog.EventProposalScored
		}
		body, err := structpb.NewStruct(payload)
		if err != nil {
			b.Fatal(err)
		}
		req.Entries = append(req.Entries, &auditorv1.AppendEntryRequest{ProposalId: proposal, Event: event, Payload: body,
			IdempotencyKey: key, OnBehalfOf: "alice@example.com", OriginTraceId: "4bf92f3577b34da6a3ce929d0e0e4736"})
	}
	return req
}

// measure runs op b.N times and reports allocations and cpu-µs/op.
func measure(b *testing.B, op func(i int)) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		op(i)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
