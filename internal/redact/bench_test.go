package redact

import (
	"strings"
	"testing"
)

// benchLine pads a log line to exactly 1 KiB.
func benchLine(core string) string {
	const filler = ` attr.k=v-0123 dur=1.25ms`
	for len(core) < 1024 {
		core += filler
	}
	return core[:1024]
}

var (
	benchClean = benchLine(`time=2026-11-27T10:30:00.123Z level=INFO msg="decision evaluated" ` +
		`service=decision-api tenant=t-01JD3Q0Z9M8K7B6V5C4X3W2Y1T request_id=123e4567-e89b-12d3-a456-426614174000 ` +
		`trace_id=9f86d081884c7d659a2feaa0c55ad015 span_id=a2feaa0c55ad015a path=/v1/decisions/evaluate method=POST ` +
		`status=200 duration=12.345ms version=v1.2.3 policy=P1 rules_evaluated=42 cache=hit bytes=5120 ` +
		`model=scorer-2026-11 score=0.873 outcome=approve reason="all checks passed" retries=0 queue_depth=3`)
	benchPII = benchLine(`time=2026-11-27T10:30:00.123Z level=INFO msg="decision evaluated for alice@example.com" ` +
		`service=decision-api tenant=t-01JD3Q0Z9M8K7B6V5C4X3W2Y1T request_id=123e4567-e89b-12d3-a456-426614174000 ` +
		`client=10.0.0.1 phone="+44 20 7946 0958" card="4111 1111 1111 1111" iban=GB82WEST12345698765432 ` +
		`auth="Bearer ` + testJWT + `" db=postgres://app:s3cr3t@db.internal/fabric password=hunter2 ` +
		`status=200 duration=12.345ms version=v1.2.3 outcome=approve`)
)

func TestBenchInputs(t *testing.T) {
	if len(benchClean) != 1024 || len(benchPII) != 1024 {
		t.Fatalf("bench inputs are %d and %d bytes", len(benchClean), len(benchPII))
	}
	if fs := Find(benchClean); len(fs) != 0 {
		t.Fatalf("clean line has findings: %v", fs)
	}
	out := String(benchPII)
	for _, s := range []string{"alice@", "10.0.0.1", "7946", "4111", "GB82", "eyJ", "s3cr3t", "hunter2"} {
		if strings.Contains(out, s) {
			t.Fatalf("%q survived: %s", s, out)
		}
	}
}

var sink string

// BenchmarkString measures String on a 1 KiB log line without and with PII
// and secrets.
func BenchmarkString(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"clean_1KiB", benchClean},
		{"pii_1KiB", benchPII},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				sink = String(bc.in)
			}
		})
	}
}

// BenchmarkCopyFloor is the floor String is compared with: copying the same
// 1 KiB input.
func BenchmarkCopyFloor(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"clean_1KiB", benchClean},
		{"pii_1KiB", benchPII},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				sink = strings.Clone(bc.in)
			}
		})
	}
}

func BenchmarkSensitiveKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = SensitiveKey("userEmailAddress")
	}
}
