package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/oklog/ulid/v2"
)

// Validation runs before any SQL so both backends accept and reject exactly
// the same inputs (e.g. Postgres rejects NUL in TEXT, SQLite does not).

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func checkULID(field, v string) error {
	id, err := ulid.ParseStrict(v)
	if err != nil || id.String() != v {
		return invalidf("%s %q is not a canonical ULID", field, v)
	}
	return nil
}

// checkText: valid UTF-8 without NUL; required fields must be non-empty.
func checkText(field, v string, required bool) error {
	switch {
	case required && v == "":
		return invalidf("%s is required", field)
	case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
		return invalidf("%s must be valid UTF-8 without NUL bytes", field)
	}
	return nil
}

func checkJSON(field string, b []byte) error {
	if len(b) == 0 || !utf8.Valid(b) || !json.Valid(b) {
		return invalidf("%s must be valid UTF-8 JSON", field)
	}
	return nil
}

// checkJSONObject is checkJSON for a value that must be a JSON object.
func checkJSONObject(field string, b []byte) error {
	if err := checkJSON(field, b); err != nil {
		return err
	}
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
		return invalidf("%s must be a JSON object", field)
	}
	return nil
}

// contentHash returns the hex SHA-256 of data, checking it against claimed when set.
func contentHash(field, claimed string, data []byte) (string, error) {
	actual := canonical.SHA256Hex(data)
	if claimed != "" && claimed != actual {
		return "", invalidf("%s %q does not match the content (sha256 %s)", field, claimed, actual)
	}
	return actual, nil
}

func checkAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// normalizeProposal validates p and returns the row to insert (a copy).
func normalizeProposal(p *Proposal) (*Proposal, error) {
	if p == nil {
		return nil, invalidf("nil proposal")
	}
	r := *p
	if err := checkAll(
		checkULID("ID", r.ID),
		checkText("TenantID", r.TenantID, true),
		checkText("Status", r.Status, true),
		checkText("IdempotencyKey", r.IdempotencyKey, false),
		checkText("CreatedBy", r.CreatedBy, false),
		checkText("TraceID", r.TraceID, false),
		checkJSON("Manifest", r.Manifest),
	); err != nil {
		return nil, err
	}
	switch r.Impact {
	case "", "low", "medium", "high":
	default:
		return nil, invalidf("Impact %q is not one of low, medium, high or empty", r.Impact)
	}
	if len(r.Metadata) == 0 {
		r.Metadata = []byte("{}")
	} else if err := checkJSONObject("Metadata", r.Metadata); err != nil {
		return nil, err
	}
	if len(r.Decision) == 0 {
		r.Decision = []byte("{}")
	} else if err := checkJSON("Decision", r.Decision); err != nil {
		return nil, err
	}
	r.Decision = bytes.Clone(r.Decision)
	if len(r.ConsensusBundle) > 0 {
		if err := checkJSONObject("ConsensusBundle", r.ConsensusBundle); err != nil {
			return nil, err
		}
	}
	if r.PostStateSHA256 != "" && !canonical.IsSHA256Hex(r.PostStateSHA256) {
		return nil, invalidf("PostStateSHA256 must be 64 lower-case hex characters")
	}
	if r.PreStateSHA256 != "" && !canonical.IsSHA256Hex(r.PreStateSHA256) {
		return nil, invalidf("PreStateSHA256 must be 64 lower-case hex characters")
	}
	if r.RequestSHA256 != "" && !canonical.IsSHA256Hex(r.RequestSHA256) {
		return nil, invalidf("RequestSHA256 must be 64 lower-case hex characters")
	}
	var err error
	if r.ManifestSHA256, err = contentHash("ManifestSHA256", r.ManifestSHA256, r.Manifest); err != nil {
		return nil, err
	}
	r.Manifest = bytes.Clone(r.Manifest)
	r.Action, r.Target = manifestKeys(r.Manifest)
	r.Metadata = bytes.Clone(r.Metadata)
	r.Version = 1
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	r.CreatedAt = normTime(r.CreatedAt)
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	r.UpdatedAt = normTime(r.UpdatedAt)
	return &r, nil
}

func normalizeSnapshot(s *Snapshot) (*Snapshot, error) {
	if s == nil {
		return nil, invalidf("nil snapshot")
	}
	r := *s
	if err := checkAll(
		checkULID("ID", r.ID),
		checkULID("ProposalID", r.ProposalID),
		checkText("TenantID", r.TenantID, true),
		checkJSON("State", r.State),
	); err != nil {
		return nil, err
	}
	if r.Kind != "pre" && r.Kind != "post" {
		return nil, invalidf("Kind %q is not pre or post", r.Kind)
	}
	var err error
	if r.SHA256, err = contentHash("SHA256", r.SHA256, r.State); err != nil {
		return nil, err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	r.CreatedAt = normTime(r.CreatedAt)
	return &r, nil
}

func normalizeWorldState(ws *WorldState) (*WorldState, error) {
	if ws == nil {
		return nil, invalidf("nil world state")
	}
	r := *ws
	if err := checkAll(
		checkText("TenantID", r.TenantID, true),
		checkText("Region", r.Region, false),
		checkText("Target", r.Target, true),
		checkJSON("State", r.State),
	); err != nil {
		return nil, err
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now()
	}
	r.UpdatedAt = normTime(r.UpdatedAt)
	return &r, nil
}

// manifestKeys reads the manifest's "action" and "target" strings ("" when absent or
// not strings); the manifest is already known to be valid JSON.
func manifestKeys(manifest []byte) (action, target string) {
	var m struct {
		Action json.RawMessage `json:"action"`
		Target json.RawMessage `json:"target"`
	}
	if json.Unmarshal(manifest, &m) != nil {
		return "", ""
	}
	str := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	}
	return str(m.Action), str(m.Target)
}
