package auditlog

import (
	"errors"
	"fmt"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrNotCosigned: a checkpoint carries no valid cosignature of a required witness.
var ErrNotCosigned = errors.New("auditlog: checkpoint is not cosigned by the witness")

// NewWitnessVerifier returns the verifier of a witness's C2SP cosignature/v1
// signatures (https://c2sp.org/tlog-cosignature) from its note verifier key,
// "<name>+<key hash>+<base64>" (an Ed25519 key, type 0x01 or 0x04), as
// `fabric witness init` writes it.
func NewWitnessVerifier(vkey string) (note.Verifier, error) {
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, fmt.Errorf("auditlog: witness verifier key: %w", err)
	}
	return v, nil
}

// VerifyCosignature checks that c's note carries a valid cosignature/v1 line
// of witness w over c's body: a missing one and one that does not verify
// are both ErrNotCosigned.
func VerifyCosignature(c *Checkpoint, w note.Verifier) error {
	if _, err := note.Open(c.Note, note.VerifierList(w)); err != nil {
		return fmt.Errorf("%w %s: %w", ErrNotCosigned, w.Name(), err)
	}
	return nil
}
