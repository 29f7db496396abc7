package auditlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

// referenceEntryHash is the definition of EntryHash spelled out with the
// general RFC 8785 encoder; entryHash must agree with it for every input.
func referenceEntryHash(t *testing.T, e *store.AuditEntry) string {
	doc, err := canonical.Marshal(struct {
		V              int             `json:"v"`
		TenantID       string          `json:"tenant_id"`
		Index          int64           `json:"index"`
		ProposalID     string          `json:"proposal_id"`
		Event          string          `json:"event"`
		Actor          string          `json:"actor"`
		TraceID        string          `json:"trace_id"`
		PayloadSHA256  string          `json:"payload_sha256"`
		Summary        json.RawMessage `json:"summary"`
		IdempotencyKey string          `json:"idempotency_key"`
		PrevHash       string          `json:"prev_hash"`
		CreatedAt      string          `json:"created_at"`
	}{1, e.TenantID, e.Index, e.ProposalID, e.Event, e.Actor, e.TraceID, e.PayloadSHA256, e.Summary,
		e.IdempotencyKey, e.PrevHash, e.CreatedAt.UTC().Format(TimeFormat)})
	require.NoError(t, err)
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

func FuzzEntryHash(f *testing.F) {
	f.Add("t1", int64(7), "p", "proposal.enacted", "svc", "", `{"a":1}`, "k", int64(1748779200123456))
	f.Add("t\"\\\x00\x1f\u2028é\xff<>&", int64(-1), "p\n", "e\t", "a\b\f\r", "\x7f", `{"b":[1.5e300,null,"\u0001"],"a":{}}`, "", int64(0))
	f.Fuzz(func(t *testing.T, tenant string, index int64, proposal, event, actor, trace, summary, key string, micros int64) {
		if !json.Valid([]byte(summary)) {
			return
		}
		e := &store.AuditEntry{TenantID: tenant, Index: index, ProposalID: proposal, Event: event, Actor: actor,
			TraceID: trace, PayloadSHA256: "x", Summary: []byte(summary), IdempotencyKey: key, PrevHash: "y",
			CreatedAt: time.UnixMicro(micros % (1 << 50)).UTC()}
		got, err := EntryHash(e)
		if err != nil {
			return // a summary jcs cannot canonicalise (e.g. a number out of range)
		}
		canon, err := canonical.JSON([]byte(summary))
		require.NoError(t, err)
		e.Summary = canon
		require.Equal(t, referenceEntryHash(t, e), got)
		require.Equal(t, got, entryHash(e, canon))
	})
}

// The identifier rules as documented; the validators must agree with them.
var (
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	eventPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	keyPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$`)
	tracePattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func requireValidatorsMatch(t *testing.T, s string) {
	t.Helper()
	require.Equal(t, idPattern.MatchString(s), ValidProposalID(s), "proposal id %q", s)
	require.Equal(t, len(s) <= 64 && eventPattern.MatchString(s), ValidEventName(s), "event %q", s)
	require.Equal(t, keyPattern.MatchString(s), ValidIdempotencyKey(s), "key %q", s)
	require.Equal(t, tracePattern.MatchString(s), ValidTraceID(s), "trace id %q", s)
}

func TestValidatorsMatchPatterns(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a", "A", "0", ".", "-a", "a-", "01J0000000000000000000000A", "a.b", "a.b.c", "a..b", ".a.b",
		"a.b.", "a.1b", "a._b", "a.b_1", "proposal.enacted", "Proposal.enacted", "a", "a b", "a:b/c", "a/b", "é", "a\n",
		"4bf92f3577b34da6a3ce929d0e0e4736", "4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e473",
		strings.Repeat("a", 128), strings.Repeat("a", 129), strings.Repeat("a", 200), strings.Repeat("a", 201),
		"a." + strings.Repeat("b", 62), "a." + strings.Repeat("b", 63)} {
		requireValidatorsMatch(t, s)
	}
}

func FuzzValidators(f *testing.F) {
	f.Add("proposal.enacted")
	f.Add("01J0000000000000000000000A:4:proposal.scored")
	f.Add("4bf92f3577b34da6a3ce929d0e0e4736")
	f.Fuzz(requireValidatorsMatch)
}
