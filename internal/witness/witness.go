// Package witness is a transparency-log witness for the audit log's
// checkpoints (C2SP tlog-witness, https://c2sp.org/tlog-witness): a party
// outside the auditor, holding its own Ed25519 key, that cosigns a checkpoint
// (C2SP tlog-cosignature, cosignature/v1) only when it is consistent with the
// last checkpoint of the same log it cosigned. A log that was cut or rewritten
// after the witness saw it can no longer obtain a cosignature, and a verifier
// that requires the witness's cosignature (`fabric audit-verify -witness-key`)
// refuses it.
//
// The witness keeps, per log origin, the last checkpoint it cosigned in a
// state file that it replaces atomically (write, fsync, rename, fsync the
// folder) before it returns a cosignature, so a restart never forgets what it
// vouched for. Run it with `fabric witness serve`; Local uses one in process.
package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/keyfile"
)

// Files of a witness's folder.
const (
	KeyFile   = "witness.key"  // note signer key: PRIVATE+KEY+<name>+<hash>+<base64>, 0600
	PubFile   = "witness.pub"  // note verifier key: <name>+<hash>+<base64>; give it to verifiers
	StateFile = "witness.json" // the last cosigned checkpoint of each log
)

// Errors of Add; the HTTP handler maps them to tlog-witness status codes.
var (
	// ErrMalformed: the request or checkpoint does not parse (400).
	ErrMalformed = errors.New("witness: malformed request")
	// ErrBadSignature: the checkpoint is not signed by the log's key (403).
	ErrBadSignature = errors.New("witness: the checkpoint is not signed by the log's key")
	// ErrInconsistent: the checkpoint does not extend the last one cosigned
	// (smaller, another root at the same size, or a consistency proof that
	// does not verify): a rolled-back or forked log (422).
	ErrInconsistent = errors.New("witness: the checkpoint is not consistent with the last one cosigned")
)

// ConflictError: the request's old size is not the size of the last
// checkpoint the witness cosigned for the log (409); retry from Size.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: the last checkpoint cosigned for this log has size %d", e.Size)
}

// Witness cosigns consistent checkpoints of the audit log. Safe for concurrent use.
type Witness struct {
	signer    note.Signer
	verifier  note.Verifier // this witness's cosignature verifier
	log       note.Verifier // the log's Ed25519 checkpoint key
	statePath string

	mu    sync.Mutex
	state map[string]string // origin -> last cosigned checkpoint note
}

// GenerateKey writes a fresh witness key pair named name into dir (0700):
// KeyFile (0600) and PubFile. It fails if the key exists.
func GenerateKey(dir, name string) (vkey string, err error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("witness: generate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("witness: %w", err)
	}
	if err := keyfile.CreateExclusive(filepath.Join(dir, KeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := keyfile.Ensure(filepath.Join(dir, PubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return "", err
	}
	return vkey, nil
}

// Open loads the witness kept in dir (KeyFile, StateFile) that witnesses the
// log whose checkpoints logKey verifies (the auditor's
// audit-checkpoint-ed25519.pub). A missing state file is an empty state.
func Open(dir string, logKey string) (*Witness, error) {
	skey, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("witness: read key: %w", err)
	}
	return New(strings.TrimSpace(string(skey)), logKey, filepath.Join(dir, StateFile))
}

// New returns a witness signing with skey (a note signer key), for the log
// whose checkpoints logKey (a note verifier key) verifies, keeping its state
// in statePath.
func New(skey, logKey, statePath string) (*Witness, error) {
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("witness: key: %w", err)
	}
	lv, err := note.NewVerifier(strings.TrimSpace(logKey))
	if err != nil {
		return nil, fmt.Errorf("witness: log key: %w", err)
	}
	w := &Witness{signer: signer, verifier: signer.Verifier(), log: lv, statePath: statePath, state: map[string]string{}}
	raw, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("witness: read state: %w", err)
	default:
		if err := json.Unmarshal(raw, &w.state); err != nil {
			return nil, fmt.Errorf("witness: state %s: %w", statePath, err)
		}
		for origin, n := range w.state {
			c, err := w.open([]byte(n))
			if err != nil || c.Origin != origin {
				return nil, fmt.Errorf("witness: state %s: the checkpoint of %q does not verify: %w", statePath, origin, err)
			}
		}
	}
	return w, nil
}

// Verifier is the verifier of this witness's cosignatures.
func (w *Witness) Verifier() note.Verifier { return w.verifier }

// open verifies a checkpoint note with the log's key and parses its body.
func (w *Witness) open(signed []byte) (*auditlog.Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(w.log))
	if err != nil {
		var bad *note.InvalidSignatureError
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &bad) || errors.As(err, &unverified) {
			return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c, err := auditlog.ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c.Note = signed
	return c, nil
}

// Size returns the size of the last checkpoint cosigned for origin (0 when none).
func (w *Witness) Size(origin string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.state[origin]; ok {
		c, _ := w.open([]byte(n))
		return c.Size
	}
	return 0
}

// Add is tlog-witness's add-checkpoint: it cosigns signed (a checkpoint
// note of the log) when oldSize is the size of the last checkpoint it
// cosigned for that origin (else *ConflictError) and consistency is the
// RFC 6962 proof from that checkpoint to this one (else ErrInconsistent; the
// first checkpoint of an origin is trusted on first use). It returns the
// cosignature line(s) to append to the note, after recording the checkpoint
// durably.
func (w *Witness) Add(ctx context.Context, oldSize uint64, consistency [][]byte, signed []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := w.open(signed)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var last *auditlog.Checkpoint
	if n, ok := w.state[c.Origin]; ok {
		last, _ = w.open([]byte(n))
	}
	lastSize := uint64(0)
	if last != nil {
		lastSize = last.Size
	}
	if oldSize != lastSize {
		return nil, &ConflictError{Size: lastSize}
	}
	switch {
	case last == nil:
		if len(consistency) != 0 {
			return nil, fmt.Errorf("%w: no consistency proof is expected from size 0", ErrMalformed)
		}
	case c.Size < last.Size:
		return nil, fmt.Errorf("%w: size %d is smaller than %d, cosigned before: the log was rolled back", ErrInconsistent, c.Size, last.Size)
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, last.Size, c.Size, consistency, last.Root, c.Root); err != nil {
			return nil, fmt.Errorf("%w: from size %d to %d: %w", ErrInconsistent, last.Size, c.Size, err)
		}
	}
	cosigned, err := note.Sign(&note.Note{Text: string(c.Body())}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosign: %w", err)
	}
	sig := cosigned[bytes.Index(cosigned, []byte("\n\n"))+2:]
	if last == nil || c.Size > last.Size {
		next := make(map[string]string, len(w.state)+1)
		for k, v := range w.state {
			next[k] = v
		}
		next[c.Origin] = string(signed)
		if err := w.save(next); err != nil {
			return nil, err
		}
		w.state = next
	}
	return sig, nil
}

// save replaces the state file durably: it MUST be on disk before a
// cosignature of a larger checkpoint leaves the witness.
func (w *Witness) save(state map[string]string) error {
	raw, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return fmt.Errorf("witness: state: %w", err)
	}
	dir := filepath.Dir(w.statePath)
	tmp, err := os.CreateTemp(dir, ".witness-state-*")
	if err != nil {
		return fmt.Errorf("witness: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	// A failed write or sync must stop the rename: the state file is replaced only by
	// a complete, durable copy.
	_, err = tmp.Write(raw)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), w.statePath)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("witness: save state: %w", err)
	}
	return nil
}

// Verifier verifies a witness's cosignatures (auditlog.NewWitnessVerifier).
type Verifier = note.Verifier
