package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The checkpoint file publishes every checkpoint the auditor signs outside
// the database, so that removing checkpoints (and the entries under them)
// from the store does not remove the evidence: `fabric audit-verify
// -checkpoint-file` holds the store to every checkpoint in it, and the
// auditor refuses to start on a store behind it.
//
// The file is append-only text: each record is a checkpoint's text form
// (Checkpoint.Text, a C2SP signed note with the ML-DSA-65 line) followed by
// one empty line. A record is written with one write and fsync'd before the
// checkpoint counts as published; one cut out of the file (lines up to the
// empty line) is what -trusted-checkpoint reads.

// maxCheckpointFile bounds the checkpoint file a verifier reads (about
// 200,000 checkpoints).
const maxCheckpointFile = 1 << 30

// ParseCheckpointFile splits a checkpoint file into its records' text forms,
// checking their shape, not their signatures. torn is the length of an
// incomplete last record (a write cut short by a crash), 0 when none; the
// records before it are returned.
func ParseCheckpointFile(data []byte) (records [][]byte, torn int, err error) {
	for off := 0; off < len(data); {
		rest := data[off:]
		body := bytes.Index(rest, []byte("\n\n"))
		if body < 0 {
			return records, len(rest), nil
		}
		sigs := bytes.Index(rest[body+2:], []byte("\n\n"))
		if sigs < 0 {
			return records, len(rest), nil
		}
		n := body + 2 + sigs + 1 // through the last signature line's newline
		rec := rest[:n]
		if _, _, _, err := ParseCheckpointText(rec); err != nil {
			return records, 0, fmt.Errorf("checkpoint file: record at byte %d: %w", off, err)
		}
		records = append(records, rec)
		off += n + 1
	}
	return records, 0, nil
}

// ReadCheckpointFile reads and verifies every checkpoint of a checkpoint file
// with v. A torn last record is reported in torn and skipped; any other
// malformed or unverifiable record is an error.
func ReadCheckpointFile(path string, v *Verifier) (cps []*Checkpoint, torn int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("auditlog: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCheckpointFile+1))
	if err != nil {
		return nil, 0, fmt.Errorf("auditlog: read %s: %w", path, err)
	}
	if len(data) > maxCheckpointFile {
		return nil, 0, fmt.Errorf("auditlog: %s is larger than %d bytes", path, maxCheckpointFile)
	}
	recs, torn, err := ParseCheckpointFile(data)
	if err != nil {
		return nil, 0, fmt.Errorf("auditlog: %s: %w", path, err)
	}
	for i, r := range recs {
		c, err := v.VerifyText(r)
		if err != nil {
			return nil, 0, fmt.Errorf("auditlog: %s: checkpoint %d: %w", path, i+1, err)
		}
		if _, ok := TenantOf(c.Origin); !ok {
			return nil, 0, fmt.Errorf("auditlog: %s: checkpoint %d: %w: origin %q is not a tenant's log", path, i+1, ErrMalformedCheckpoint, c.Origin)
		}
		cps = append(cps, c)
	}
	return cps, torn, nil
}

// checkpointFile appends checkpoints to the file; safe for concurrent use.
type checkpointFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// openCheckpointFile reads the checkpoints published in path (created, with
// its folder, when missing), cuts a torn last record, and opens it for appending.
func openCheckpointFile(path string, v *Verifier) (*checkpointFile, []*Checkpoint, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("auditlog: checkpoint file: %w", err)
	}
	cps, torn, err := ReadCheckpointFile(path, v)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: checkpoint file: %w", err)
	}
	if torn > 0 {
		fi, err := f.Stat()
		if err == nil {
			err = f.Truncate(fi.Size() - int64(torn))
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("auditlog: checkpoint file: cut the torn last record: %w", err)
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &checkpointFile{path: path, f: f}, cps, nil
}

// append publishes c: one write of its record, then fsync. It MUST return
// only once the record is durable.
func (cf *checkpointFile) append(c *Checkpoint) error {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.f == nil {
		return ErrClosed
	}
	rec := append(c.Text(), '\n')
	if _, err := cf.f.Write(rec); err != nil {
		return fmt.Errorf("auditlog: publish checkpoint to %s: %w", cf.path, err)
	}
	if err := cf.f.Sync(); err != nil {
		return fmt.Errorf("auditlog: publish checkpoint to %s: %w", cf.path, err)
	}
	return nil
}

func (cf *checkpointFile) close() error {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.f == nil {
		return nil
	}
	err := cf.f.Close()
	cf.f = nil
	return err
}

// syncDir makes a file's creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("auditlog: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("auditlog: sync %s: %w", dir, err)
	}
	return nil
}
