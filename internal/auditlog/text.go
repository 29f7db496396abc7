package auditlog

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// MLDSASignatureName names the ML-DSA-65 signature line of a checkpoint's
// text form (see Checkpoint.Text).
const MLDSASignatureName = KeyName + "/mldsa65"

// maxCheckpointText bounds the text form a parser reads: the four body lines,
// the Ed25519 line, a few witness cosignatures and the ML-DSA-65 line (about
// 4.5 kB) fit with room to spare.
const maxCheckpointText = 64 << 10

// Text is the checkpoint as one C2SP signed note a second party can save and
// verify later (`fabric audit-verify -trusted-checkpoint FILE`): Note (the
// body, a blank line, the Ed25519 signature line and any witness
// cosignatures) followed by one more signature line carrying the ML-DSA-65
// signature of the same body:
//
//	— decision-fabric/audit/mldsa65 <base64(key hash || signature)>
//
// where the key hash is the first 4 bytes of the ML-DSA-65 key id
// (MLDSAKeyID). Tools that know only signed notes see an extra signature by
// an unknown key and ignore it.
func (c *Checkpoint) Text() []byte {
	var b bytes.Buffer
	b.Write(c.Note)
	b.WriteString("— " + MLDSASignatureName + " ")
	raw := make([]byte, 4, 4+len(c.MLDSASignature))
	if id, err := hex.DecodeString(c.MLDSAKeyID); err == nil && len(id) >= 4 {
		copy(raw, id)
	}
	raw = append(raw, c.MLDSASignature...)
	b.WriteString(base64.StdEncoding.EncodeToString(raw))
	b.WriteByte('\n')
	return b.Bytes()
}

// ParseCheckpointText splits a checkpoint's text form (Text) into the signed
// note and the ML-DSA-65 signature line's key hash and signature. It checks
// the shape only: exactly one ML-DSA-65 line, the last one, canonical
// base64; signatures are checked by Verifier.VerifyText.
func ParseCheckpointText(text []byte) (signedNote []byte, keyHash uint32, sig []byte, err error) {
	if len(text) > maxCheckpointText {
		return nil, 0, nil, fmt.Errorf("%w: the text form is larger than %d bytes", ErrMalformedCheckpoint, maxCheckpointText)
	}
	prefix := "— " + MLDSASignatureName + " "
	s := string(text)
	if !strings.HasSuffix(s, "\n") {
		return nil, 0, nil, fmt.Errorf("%w: the text form does not end with a newline", ErrMalformedCheckpoint)
	}
	i := strings.LastIndex(s[:len(s)-1], "\n")
	if i < 0 {
		return nil, 0, nil, fmt.Errorf("%w: no ML-DSA-65 signature line", ErrMalformedCheckpoint)
	}
	noteText, line := s[:i+1], s[i+1:len(s)-1]
	b64, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return nil, 0, nil, fmt.Errorf("%w: the last line is not the %s signature", ErrMalformedCheckpoint, MLDSASignatureName)
	}
	if strings.Contains(noteText, "\n"+prefix) {
		return nil, 0, nil, fmt.Errorf("%w: more than one %s signature", ErrMalformedCheckpoint, MLDSASignatureName)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || base64.StdEncoding.EncodeToString(raw) != b64 {
		return nil, 0, nil, fmt.Errorf("%w: the %s signature is not canonical base64", ErrMalformedCheckpoint, MLDSASignatureName)
	}
	if len(raw) != 4+mldsa65.SignatureSize {
		return nil, 0, nil, fmt.Errorf("%w: the %s signature has %d bytes, want %d", ErrMalformedCheckpoint, MLDSASignatureName, len(raw), 4+mldsa65.SignatureSize)
	}
	return []byte(noteText), binary.BigEndian.Uint32(raw), raw[4:], nil
}

// mldsaKeyHash is the key hash of the ML-DSA-65 signature line.
func (v *Verifier) mldsaKeyHash() uint32 {
	id, _ := hex.DecodeString(v.mldsaKeyID)
	return binary.BigEndian.Uint32(id)
}

// VerifyText parses and verifies a checkpoint's text form (Text) as Verify
// does: both signatures by v's keys. The returned checkpoint's Note keeps any
// witness cosignatures (check them with VerifyCosignature).
func (v *Verifier) VerifyText(text []byte) (*Checkpoint, error) {
	signedNote, keyHash, sig, err := ParseCheckpointText(text)
	if err != nil {
		return nil, err
	}
	if keyHash != v.mldsaKeyHash() {
		return nil, fmt.Errorf("%w: ML-DSA-65 signature by key %08x, not %08x", ErrBadSignature, keyHash, v.mldsaKeyHash())
	}
	return v.Verify(signedNote, sig)
}
