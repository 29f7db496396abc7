package auditlog

// Benchmarks, each beside its floor (run with `go test -bench . -run ^$ ./internal/auditlog`):
//
//   - BenchmarkAppend: durable appends per second through the sequencer on
//     embedded SQLite (synchronous=FULL), checkpoints batched by the defaults,
//     with 1 and with 64 concurrent callers; beside BenchmarkFloorInsert, one
//     bare durable SQLite INSERT (its own commit) per operation.
//   - BenchmarkPrepare: validating one event and digesting its payload (the
//     canonical SHA-256 and the redacted summary) as the auditor receives it
//     from the coordinator; beside BenchmarkFloorPayloadHash, the SHA-256 of
//     the payload's canonical bytes alone.
//   - BenchmarkInclusionProof: inclusion proof generation in a 1,000,000-leaf
//     tree (p50/p99 per proof); beside BenchmarkFloorMLDSASign, one ML-DSA-65
//     signature, the cost a per-entry signature would add.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

func BenchmarkAppend(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("sqlite/clients=%d", clients), func(b *testing.B) {
			st, err := store.Open(context.Background(), store.Config{DataDir: filepath.Join(b.TempDir(), "data")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			reg := prometheus.NewRegistry()
			l, err := New(Options{Store: st, Keys: testKeys(b), Registerer: reg})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ev := Event{TenantID: "bench", ProposalID: "01J0000000000000000000000A", Event: EventNegotiationVote,
				Actor: "svc:negotiator", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
				Payload: map[string]any{"region": "eu-west", "verdict": "ACCEPT", "round": 1}}
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, _, err := l.Append(context.Background(), ev); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
			cps, err := st.AuditLog().ListCheckpoints(context.Background(), "bench")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(cps)), "checkpoints")
			if mfs, err := reg.Gather(); err == nil {
				for _, mf := range mfs {
					if mf.GetName() == "fabric_audit_append_batch_size" {
						h := mf.GetMetric()[0].GetHistogram()
						b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "appends/commit")
					}
					if mf.GetName() == "fabric_audit_append_commit_seconds" {
						h := mf.GetMetric()[0].GetHistogram()
						b.ReportMetric(1e3*h.GetSampleSum()/float64(h.GetSampleCount()), "ms/commit")
					}
				}
			}
		})
	}
}

func BenchmarkFloorInsert(b *testing.B) {
	file := filepath.Join(b.TempDir(), "floor.db")
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE scratch (id INTEGER PRIMARY KEY, body BLOB NOT NULL) STRICT`); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 400) // about an audit row
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := db.Exec(`INSERT INTO scratch (id, body) VALUES ($1, $2)`, i, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "inserts/s")
}

// benchEvent is a decision's scored transition as the auditor hands it to the
// log: a JSON-like map as structpb.Struct.AsMap returns it (numbers float64).
func benchEvent() Event {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	return Event{TenantID: "bench", ProposalID: "01J0000000000000000000000A", Event: EventProposalScored,
		Actor: "alice@example.com", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		IdempotencyKey: "01J0000000000000000000000A:4:proposal.scored",
		Payload: map[string]any{
			"from": "NEGOTIATING", "status": "SCORED", "version": 4.0, "manifest_sha256": sha,
			"pre_state_sha256": sha, "negotiation_id": "neg-01J0000000000000000000000A",
			"votes":      map[string]any{"accept": 5.0, "reject": 0.0, "counter": 0.0, "abstain": 0.0, "outcome": "ACCEPTED"},
			"confidence": 0.87, "risk_level": "LOW", "consensus_bundle_sha256": sha,
		}}
}

func BenchmarkPrepare(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := prepare(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorPayloadHash(b *testing.B) {
	raw, err := canonical.Marshal(benchEvent().Payload)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(raw)
	}
}

var (
	bigTreeOnce sync.Once
	bigTree     tree
)

const bigTreeSize = 1_000_000

func BenchmarkInclusionProof(b *testing.B) {
	bigTreeOnce.Do(func() {
		var buf [8]byte
		for i := range uint64(bigTreeSize) {
			binary.BigEndian.PutUint64(buf[:], i)
			bigTree.appendLeaf(leafHash(sha256.Sum256(buf[:])))
		}
	})
	size := bigTree.size
	root, err := bigTree.root(size)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		i := rng.Uint64N(size)
		t0 := time.Now()
		p, err := bigTree.inclusion(i, size)
		durations = append(durations, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if i%1024 == 0 { // spot-check, outside the timed part
			leaf := bigTree.leaf(i)
			if err := proof.VerifyInclusion(hasher, i, size, leaf[:], p, root); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	reportPercentiles(b, durations)
	b.ReportMetric(float64(size), "leaves")
}

func BenchmarkFloorMLDSASign(b *testing.B) {
	k := testKeys(b)
	msg := signed(b, k).Body()
	sig := make([]byte, mldsa65.SignatureSize)
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := mldsa65.SignTo(k.mldsa, msg, nil, true, sig); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
