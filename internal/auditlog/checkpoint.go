package auditlog

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	tlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/decision-fabric/fabric/internal/store"
)

// Origin returns the checkpoint origin of a tenant's log:
// "decision-fabric/audit/<tenant>", the tenant percent-encoded outside
// A-Z a-z 0-9 - . _ ~ so the origin is one line without spaces or '+'.
func Origin(tenant string) string {
	var b strings.Builder
	b.WriteString(KeyName + "/")
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Checkpoint is a signed statement of a log's size and Merkle root at a time.
//
// Its body is the C2SP tlog-checkpoint text with one extension line:
//
//	decision-fabric/audit/<tenant>
//	<size>
//	<base64 root hash>
//	time <created_at, TimeFormat>
//
// Note is the C2SP signed note of that body: the body, a blank line and the
// Ed25519 signature line "— decision-fabric/audit <base64(key hash||sig)>".
// MLDSASignature is the ML-DSA-65 (FIPS 204, empty context) signature of the
// same body bytes.
type Checkpoint struct {
	Origin         string
	Size           uint64
	Root           []byte
	Time           time.Time
	Note           []byte
	MLDSASignature []byte
	MLDSAKeyID     string
}

// Body returns the signed checkpoint body.
func (c *Checkpoint) Body() []byte {
	body := tlog.Checkpoint{Origin: c.Origin, Size: c.Size, Hash: c.Root}.Marshal()
	return append(body, "time "+c.Time.UTC().Format(TimeFormat)+"\n"...)
}

// Errors of checkpoint verification; callers branch with errors.Is.
var (
	// ErrMalformedCheckpoint: the note or body does not parse.
	ErrMalformedCheckpoint = errors.New("auditlog: malformed checkpoint")
	// ErrBadSignature: a signature is missing or does not verify.
	ErrBadSignature = errors.New("auditlog: checkpoint signature does not verify")
)

// sign makes the checkpoint of (origin, size, root) at t.
func (k *Keys) sign(origin string, size uint64, root []byte, t time.Time) (*Checkpoint, error) {
	c := &Checkpoint{Origin: origin, Size: size, Root: root, Time: t.UTC().Truncate(time.Microsecond), MLDSAKeyID: k.verifier.mldsaKeyID}
	body := c.Body()
	signed, err := note.Sign(&note.Note{Text: string(body)}, k.noteSigner)
	if err != nil {
		return nil, fmt.Errorf("auditlog: sign checkpoint: %w", err)
	}
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(k.mldsa, body, nil, true, sig); err != nil {
		return nil, fmt.Errorf("auditlog: sign checkpoint: %w", err)
	}
	c.Note, c.MLDSASignature = signed, sig
	return c, nil
}

// Verify checks a checkpoint as a verifier holding only the public keys
// would: the note must carry a valid Ed25519 signature of this key (other
// signature lines are ignored), the ML-DSA-65 signature must verify over the
// same body, and the body must be a well-formed checkpoint. It returns the
// parsed checkpoint. A wrong origin is the caller's to check (Origin).
func (v *Verifier) Verify(signedNote, mldsaSignature []byte) (*Checkpoint, error) {
	n, err := note.Open(signedNote, note.VerifierList(v.note))
	if err != nil {
		var bad *note.InvalidSignatureError
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &bad) || errors.As(err, &unverified) {
			return nil, fmt.Errorf("%w: Ed25519: %w", ErrBadSignature, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	if !mldsa65.Verify(v.mldsa, []byte(n.Text), nil, mldsaSignature) {
		return nil, fmt.Errorf("%w: ML-DSA-65", ErrBadSignature)
	}
	c.Note = bytes.Clone(signedNote)
	c.MLDSASignature = bytes.Clone(mldsaSignature)
	c.MLDSAKeyID = v.mldsaKeyID
	return c, nil
}

// ParseCheckpointBody parses a checkpoint body strictly: exactly the four
// lines Body writes, in canonical form (no leading zeros, canonical base64
// of a 32-byte hash, TimeFormat time), so a body parses only if Body
// reproduces it byte for byte. Signatures are not checked (see Verifier.Verify).
func ParseCheckpointBody(body []byte) (*Checkpoint, error) {
	var cp tlog.Checkpoint
	rest, err := cp.Unmarshal(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
	}
	lines := strings.SplitN(string(body), "\n", 4)
	if !strings.HasPrefix(cp.Origin, KeyName+"/") || strings.ContainsAny(cp.Origin, " +") {
		return nil, fmt.Errorf("%w: origin %q is not %s/<tenant>", ErrMalformedCheckpoint, cp.Origin, KeyName)
	}
	if strconv.FormatUint(cp.Size, 10) != lines[1] || cp.Size == 0 {
		return nil, fmt.Errorf("%w: size %q is not a canonical positive decimal", ErrMalformedCheckpoint, lines[1])
	}
	if len(cp.Hash) != hashSize || base64.StdEncoding.EncodeToString(cp.Hash) != lines[2] {
		return nil, fmt.Errorf("%w: root hash is not the canonical base64 of 32 bytes", ErrMalformedCheckpoint)
	}
	ts, ok := strings.CutPrefix(string(rest), "time ")
	ts, ok2 := strings.CutSuffix(ts, "\n")
	if !ok || !ok2 || strings.Contains(ts, "\n") {
		return nil, fmt.Errorf("%w: want one extension line \"time <RFC 3339>\"", ErrMalformedCheckpoint)
	}
	t, err := time.Parse(TimeFormat, ts)
	if err != nil || t.UTC().Format(TimeFormat) != ts {
		return nil, fmt.Errorf("%w: time %q is not in the form %s", ErrMalformedCheckpoint, ts, TimeFormat)
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Time: t.UTC()}, nil
}

// record is the checkpoint as stored for tenant.
func (c *Checkpoint) record(tenant string) *store.AuditCheckpoint {
	return &store.AuditCheckpoint{
		TenantID:       tenant,
		Size:           int64(c.Size),
		RootHash:       hex.EncodeToString(c.Root),
		Note:           string(c.Note),
		MLDSASignature: base64.StdEncoding.EncodeToString(c.MLDSASignature),
		MLDSAKeyID:     c.MLDSAKeyID,
		CreatedAt:      c.Time,
	}
}

// open verifies a stored checkpoint of tenant: both signatures, the origin,
// and that the stored size and root are the signed ones.
func (v *Verifier) open(tenant string, r *store.AuditCheckpoint) (*Checkpoint, error) {
	sig, err := base64.StdEncoding.DecodeString(r.MLDSASignature)
	if err != nil {
		return nil, fmt.Errorf("%w: ML-DSA-65 signature is not base64", ErrMalformedCheckpoint)
	}
	c, err := v.Verify([]byte(r.Note), sig)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Origin != Origin(tenant):
		return nil, fmt.Errorf("%w: origin %q is not tenant %q's log", ErrMalformedCheckpoint, c.Origin, tenant)
	case int64(c.Size) != r.Size || hex.EncodeToString(c.Root) != r.RootHash:
		return nil, fmt.Errorf("%w: the stored size or root differs from the signed one", ErrMalformedCheckpoint)
	case r.MLDSAKeyID != v.mldsaKeyID:
		return nil, fmt.Errorf("%w: made with ML-DSA-65 key %s, not %s", ErrBadSignature, r.MLDSAKeyID, v.mldsaKeyID)
	}
	return c, nil
}

// TenantOf is the inverse of Origin: the tenant whose log origin is, and
// whether origin is a tenant log's origin in Origin's canonical form.
func TenantOf(origin string) (string, bool) {
	enc, ok := strings.CutPrefix(origin, KeyName+"/")
	if !ok || enc == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(enc); i++ {
		if enc[i] != '%' {
			b.WriteByte(enc[i])
			continue
		}
		if i+2 >= len(enc) {
			return "", false
		}
		v, err := strconv.ParseUint(enc[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	tenant := b.String()
	return tenant, Origin(tenant) == origin
}
