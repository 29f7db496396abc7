package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/store"
)

// Events the fabric records. Event names are lower-case dotted words; others
// matching the same pattern are accepted too.
const (
	EventProposalSubmitted  = "proposal.submitted"
	EventNegotiationVote    = "negotiation.vote"
	EventProposalScored     = "proposal.scored"
	EventProposalDryRun     = "proposal.dry_run"
	EventProposalEnacted    = "proposal.enacted"
	EventProposalRolledBack = "proposal.rolled_back"
	EventSnapshotRecorded   = "snapshot.recorded"
)

// Limits on what one event may carry.
const (
	// MaxPayloadBytes bounds the canonical payload that is hashed.
	MaxPayloadBytes = 1 << 20
	// MaxSummaryBytes bounds the redacted summary that is stored; a larger
	// summary is replaced by {"omitted": "..."} (the hash still covers the
	// whole payload).
	MaxSummaryBytes = 4096
	maxActorBytes   = 256
	maxTenantBytes  = 256
)

// Event is what a caller appends. The log never stores Payload: it stores
// its SHA-256 (of the RFC 8785 canonical JSON) and a summary of it passed
// through redact.Value with no PII allowed, so no secret or personal data in
// a payload reaches the store, the API or the logs.
type Event struct {
	TenantID   string // required: whose log
	ProposalID string // required: 1-128 of A-Z a-z 0-9 . _ : - (e.g. a ULID)
	Event      string // required: lower-case dotted name, e.g. "proposal.enacted"
	// Actor is who caused it (JWT subject or service name). It is redacted
	// like free text before it is stored (a subject that is an e-mail address
	// is not kept).
	Actor   string
	TraceID string // 32 lower-case hex characters (OpenTelemetry), or ""
	// Payload is the event's data: a JSON object, as a JSON-like Go value
	// (map[string]any, a struct...) or as JSON text (json.RawMessage, []byte).
	// Optional when PayloadSHA256 is given.
	Payload any
	// PayloadSHA256 is the lower-case hex SHA-256 of the canonical payload.
	// When Payload is set too it must match it.
	PayloadSHA256 string
	// IdempotencyKey, when set, makes the append happen once per tenant and
	// key: a retry returns the entry already appended (created=false).
	// 1-200 of A-Z a-z 0-9 . _ : / -.
	IdempotencyKey string
}

// The identifier rules, as regular expressions (TestValidatorsMatchPatterns
// holds the functions below to them; they run without the regexp engine, on
// every event, twice):
//
//	proposal_id      ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$
//	event            ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$, at most 64 bytes
//	idempotency_key  ^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$
//	trace_id         ^[0-9a-f]{32}$

// ValidProposalID reports whether id is acceptable as Event.ProposalID.
func ValidProposalID(id string) bool { return validName(id, 128, "._:-") }

// ValidEventName reports whether name is acceptable as Event.Event.
func ValidEventName(name string) bool {
	if len(name) > 64 {
		return false
	}
	words := 0
	for w := range strings.SplitSeq(name, ".") {
		if w == "" || !isLower(w[0]) {
			return false
		}
		for i := 1; i < len(w); i++ {
			if c := w[i]; !isLower(c) && !isDigit(c) && c != '_' {
				return false
			}
		}
		words++
	}
	return words >= 2
}

// ValidTraceID reports whether id is an OpenTelemetry trace id: 32 lower-case hex.
func ValidTraceID(id string) bool {
	return canonical.IsLowerHex(id, 32)
}

// ValidIdempotencyKey reports whether key is acceptable as Event.IdempotencyKey.
func ValidIdempotencyKey(key string) bool { return validName(key, 200, "._:/-") }

// validName reports whether s is 1 to maxLen bytes of letters, digits and the
// punctuation in punct, starting with a letter or digit.
func validName(s string, maxLen int, punct string) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLower(c) && !isDigit(c) && (c < 'A' || c > 'Z') && (i == 0 || strings.IndexByte(punct, c) < 0) {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// prepared is a validated event: everything of its entry but the position.
type prepared struct {
	tenant, proposal, event, actor, trace string
	payloadSHA, key                       string
	summary                               []byte
}

func prepare(e Event) (*prepared, error) {
	switch {
	case e.TenantID == "" || len(e.TenantID) > maxTenantBytes || !utf8.ValidString(e.TenantID) ||
		strings.IndexFunc(e.TenantID, unicode.IsControl) >= 0:
		return nil, invalid("tenant_id must be 1-%d printable characters", maxTenantBytes)
	case !ValidProposalID(e.ProposalID):
		return nil, invalid("proposal_id must be 1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit")
	case !ValidEventName(e.Event):
		return nil, invalid("event %q must be lower-case dotted words, e.g. %q", e.Event, EventProposalEnacted)
	case e.TraceID != "" && !ValidTraceID(e.TraceID):
		return nil, invalid("trace_id must be 32 lower-case hex characters")
	case e.IdempotencyKey != "" && !ValidIdempotencyKey(e.IdempotencyKey):
		return nil, invalid("idempotency_key must be 1-200 of A-Z a-z 0-9 . _ : / -")
	case e.PayloadSHA256 != "" && !canonical.IsSHA256Hex(e.PayloadSHA256):
		return nil, invalid("payload_sha256 must be 64 lower-case hex characters")
	case e.Payload == nil && e.PayloadSHA256 == "":
		return nil, invalid("a payload or its payload_sha256 is required")
	}
	p := &prepared{
		tenant: e.TenantID, proposal: e.ProposalID, event: e.Event, trace: e.TraceID,
		payloadSHA: e.PayloadSHA256, key: e.IdempotencyKey, summary: []byte("{}"),
		actor: redact.String(strings.ToValidUTF8(e.Actor, "\uFFFD")),
	}
	if len(p.actor) > maxActorBytes || strings.IndexFunc(p.actor, unicode.IsControl) >= 0 {
		return nil, invalid("actor must be at most %d printable bytes", maxActorBytes)
	}
	if e.Payload != nil {
		sum, summary, err := digest(e.Payload)
		if err != nil {
			return nil, err
		}
		if p.payloadSHA != "" && p.payloadSHA != sum {
			return nil, invalid("payload_sha256 does not match the payload (its canonical SHA-256 is %s)", sum)
		}
		p.payloadSHA, p.summary = sum, summary
	}
	return p, nil
}

// digest returns the hex SHA-256 of payload's canonical JSON and its redacted
// summary (canonical JSON). A JSON-like map takes the fast path (payload.go);
// anything else, or a map the fast path does not handle, the general one.
func digest(payload any) (string, []byte, error) {
	var raw []byte
	var tree any
	if m, ok := payload.(map[string]any); ok {
		if tree, ok = jsonTree(m, 0); ok {
			raw, _ = appendCanonical(make([]byte, 0, 512), tree) // a tree jsonTree made always encodes
			if err := checkPayload(raw); err != nil {
				return "", nil, err
			}
		}
	}
	if raw == nil {
		var err error
		if raw, tree, err = generalTree(payload); err != nil {
			return "", nil, err
		}
	}
	red, _ := redact.Value(tree, redact.Policy{})
	summary, ok := appendCanonical(nil, red)
	if !ok {
		var err error
		if summary, err = canonical.Marshal(red); err != nil {
			return "", nil, fmt.Errorf("auditlog: summary: %w", err)
		}
	}
	if len(summary) > MaxSummaryBytes {
		summary = []byte(fmt.Sprintf(`{"omitted":"the redacted summary was %d bytes; the limit is %d"}`, len(summary), MaxSummaryBytes))
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), summary, nil
}

// checkPayload applies the rules on a payload's canonical JSON.
func checkPayload(raw []byte) error {
	if len(raw) > MaxPayloadBytes {
		return invalid("payload is %d bytes of canonical JSON; the limit is %d (send its payload_sha256 instead)", len(raw), MaxPayloadBytes)
	}
	if raw[0] != '{' {
		return invalid("payload must be a JSON object")
	}
	return nil
}

// generalTree is the general path of digest: payload's canonical JSON (through
// encoding/json) and that JSON decoded again (numbers as json.Number) for
// redaction.
func generalTree(payload any) (raw []byte, tree any, err error) {
	switch v := payload.(type) {
	case json.RawMessage:
		raw, err = canonical.JSON(v)
	case []byte:
		raw, err = canonical.JSON(v)
	default:
		raw, err = canonical.Marshal(v)
	}
	if err != nil {
		return nil, nil, invalid("payload is not JSON: %v", err)
	}
	if err := checkPayload(raw); err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, nil, invalid("payload is not JSON: %v", err)
	}
	return raw, tree, nil
}

// entry returns the entry p becomes at index after prev, at time at.
func (p *prepared) entry(index int64, prev string, at time.Time) (*store.AuditEntry, error) {
	e := &store.AuditEntry{
		TenantID:       p.tenant,
		Index:          index,
		ProposalID:     p.proposal,
		Event:          p.event,
		Actor:          p.actor,
		TraceID:        p.trace,
		PayloadSHA256:  p.payloadSHA,
		Summary:        p.summary,
		IdempotencyKey: p.key,
		PrevHash:       prev,
		CreatedAt:      at.UTC().Truncate(time.Microsecond),
	}
	e.EntryHash = entryHash(e, p.summary) // p.summary is canonical (digest)
	return e, nil
}

// TimeFormat is how created_at appears in the hashed document: RFC 3339 in
// UTC with exactly six fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// EntryHash returns the lower-case hex SHA-256 of the RFC 8785 canonical JSON
// of e's fields (all but EntryHash):
//
//	{"actor","created_at","event","idempotency_key","index","payload_sha256",
//	 "prev_hash","proposal_id","summary","tenant_id","trace_id","v":1}
//
// where created_at is formatted with TimeFormat and summary is the stored
// JSON object. Anyone holding an entry can recompute it; the entry's Merkle
// leaf is this hash's 32 bytes.
func EntryHash(e *store.AuditEntry) (string, error) {
	summary := e.Summary
	if len(summary) == 0 {
		summary = []byte("{}")
	}
	summary, err := canonical.JSON(summary)
	if err != nil {
		return "", fmt.Errorf("auditlog: entry %d: summary: %w", e.Index, err)
	}
	return entryHash(e, summary), nil
}

// entryHash is EntryHash for a summary already in canonical form (as the log
// produces it). It writes the canonical document directly: the fields are
// strings and one integer in a fixed key order, and jcs would cost ten times
// as much on the sequencer's path. FuzzEntryHash checks the two agree.
func entryHash(e *store.AuditEntry, canonicalSummary []byte) string {
	b := make([]byte, 0, 512+len(canonicalSummary))
	b = append(b, `{"actor":`...)
	b = canonical.AppendString(b, e.Actor)
	b = append(b, `,"created_at":`...)
	b = canonical.AppendString(b, e.CreatedAt.UTC().Format(TimeFormat))
	b = append(b, `,"event":`...)
	b = canonical.AppendString(b, e.Event)
	b = append(b, `,"idempotency_key":`...)
	b = canonical.AppendString(b, e.IdempotencyKey)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, e.Index, 10)
	b = append(b, `,"payload_sha256":`...)
	b = canonical.AppendString(b, e.PayloadSHA256)
	b = append(b, `,"prev_hash":`...)
	b = canonical.AppendString(b, e.PrevHash)
	b = append(b, `,"proposal_id":`...)
	b = canonical.AppendString(b, e.ProposalID)
	b = append(b, `,"summary":`...)
	b = append(b, canonicalSummary...)
	b = append(b, `,"tenant_id":`...)
	b = canonical.AppendString(b, e.TenantID)
	b = append(b, `,"trace_id":`...)
	b = canonical.AppendString(b, e.TraceID)
	b = append(b, `,"v":1}`...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// LeafHash returns the RFC 6962 leaf hash of an entry hash (hex), the value
// an inclusion proof starts from.
func LeafHash(entryHash string) ([]byte, error) {
	h, err := decodeHash(entryHash)
	if err != nil {
		return nil, err
	}
	lh := leafHash(h)
	return lh[:], nil
}

func decodeHash(s string) (node, error) {
	var h node
	if !canonical.IsSHA256Hex(s) {
		return h, fmt.Errorf("auditlog: %q is not a lower-case hex SHA-256", s)
	}
	_, _ = hex.Decode(h[:], []byte(s))
	return h, nil
}
