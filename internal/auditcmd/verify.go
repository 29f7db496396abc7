// Package auditcmd is the command line of the audit log's verification and
// witness: `fabric audit-verify` (also services/decision-auditor/cmd/audit-verify)
// and `fabric witness`.
package auditcmd

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
)

// ErrTampered: the store was read, and a log does not verify (exit code 2).
var ErrTampered = errors.New("the audit log does not verify")

// DefaultCheckpointFile is where the auditor publishes its checkpoints
// (config audit.checkpoint_file), relative to the data folder.
const DefaultCheckpointFile = "audit/checkpoints"

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Verify is `fabric audit-verify`: it recomputes the audit log from the store
// with only the public keys, holds it to the checkpoints published outside
// the store and to checkpoints the caller saved earlier, requires every
// entry beyond a bounded tail to be covered by a (witnessed) checkpoint, and
// names, per tenant, the first entry that was altered, removed, reordered or
// left unsigned. It returns ErrTampered when a log does not verify.
func Verify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "data", "the embedded store's folder (ignored with -postgres-dsn)")
	dsn := fs.String("postgres-dsn", os.Getenv("POSTGRES_DSN"), "Postgres store (default $POSTGRES_DSN)")
	keys := fs.String("keys", "", "folder with the public keys "+auditlog.Ed25519PubFile+" and "+auditlog.MLDSAPubFile+" (default <data-dir>/keys)")
	tenant := fs.String("tenant", "", "verify one tenant's log (default: every tenant's)")
	cpFile := fs.String("checkpoint-file", "", "the auditor's published checkpoint file (default <data-dir>/"+DefaultCheckpointFile+" when it exists; \"-\" for none)")
	var trusted, witnesses stringList
	fs.Var(&trusted, "trusted-checkpoint", "a checkpoint saved earlier (GET /audit/checkpoint, or records cut from the checkpoint file): the log must extend it (repeatable)")
	fs.Var(&witnesses, "witness-key", "a witness's note verifier key file (witness.pub): only checkpoints it cosigned cover entries (repeatable)")
	maxUnsigned := fs.Int64("max-unsigned", auditlog.DefaultMaxUnsigned, "entries allowed after the last covering checkpoint (0: none)")
	maxAge := fs.Duration("max-unsigned-age", auditlog.DefaultMaxUnsignedAge, "how long ago the first entry not covered by a checkpoint may have been appended (0: no age limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keys == "" {
		*keys = filepath.Join(*dataDir, "keys")
	}
	v, err := loadVerifier(*keys)
	if err != nil {
		return err
	}
	opts := auditlog.VerifyOptions{Tenant: *tenant, MaxUnsigned: *maxUnsigned, MaxUnsignedAge: *maxAge}
	if opts.MaxUnsigned == 0 {
		opts.MaxUnsigned = -1
	}
	if opts.MaxUnsignedAge == 0 {
		opts.MaxUnsignedAge = -1
	}
	path := *cpFile
	if path == "" {
		path = filepath.Join(*dataDir, DefaultCheckpointFile)
		if _, err := os.Stat(path); errors.Is(err, iofs.ErrNotExist) {
			path = "-"
		}
	}
	if path != "-" {
		cps, torn, err := auditlog.ReadCheckpointFile(path, v)
		if err != nil {
			return err
		}
		if torn > 0 {
			fmt.Fprintf(stderr, "audit-verify: %s ends with a torn record (%d bytes, a write cut short); ignored\n", path, torn)
		}
		fmt.Fprintf(stdout, "published %s: %d checkpoints\n", path, len(cps))
		opts.Published = append(opts.Published, cps...)
	}
	for _, path := range trusted {
		cps, err := readTrusted(path, v)
		if err != nil {
			return err
		}
		for _, c := range cps {
			name, _ := auditlog.TenantOf(c.Origin)
			if *tenant != "" && name != *tenant {
				return fmt.Errorf("%s: a checkpoint of tenant %q, not %q", path, name, *tenant)
			}
		}
		opts.Published = append(opts.Published, cps...)
	}
	for _, path := range witnesses {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w, err := auditlog.NewWitnessVerifier(strings.TrimSpace(string(raw)))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		opts.Witnesses = append(opts.Witnesses, w)
	}
	st, err := store.Open(ctx, store.Config{PostgresDSN: *dsn, DataDir: *dataDir})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	rep, err := auditlog.VerifyStoreWith(ctx, st, v, opts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, t := range rep.Tenants {
		if t.OK() {
			fmt.Fprintf(stdout, "ok       %s: %d entries, %d checkpoints, %d covered\n", t.TenantID, t.Entries, t.Checkpoints, t.Covered)
			continue
		}
		if t.Problem != nil {
			fmt.Fprintf(stdout, "TAMPERED %s: entry %d %s: %s\n", t.TenantID, t.Problem.Index, t.Problem.Kind, t.Problem.Detail)
		}
		for _, p := range t.CheckpointProblems {
			fmt.Fprintf(stdout, "TAMPERED %s: %s\n", t.TenantID, p.Detail)
		}
	}
	if !rep.OK() {
		return ErrTampered
	}
	return nil
}

func loadVerifier(dir string) (*auditlog.Verifier, error) {
	vkey, err := os.ReadFile(filepath.Join(dir, auditlog.Ed25519PubFile))
	if err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(filepath.Join(dir, auditlog.MLDSAPubFile))
	if err != nil {
		return nil, err
	}
	return auditlog.NewVerifier(string(vkey), pub)
}

// readTrusted reads a saved checkpoint: one checkpoint text, or several
// records of a checkpoint file. Each must verify with v.
func readTrusted(path string, v *auditlog.Verifier) ([]*auditlog.Checkpoint, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// One text form lacks the record's closing empty line; add it.
	raw = append(bytes.TrimRight(raw, "\n"), '\n', '\n')
	recs, torn, err := auditlog.ParseCheckpointFile(raw)
	if err == nil && (torn > 0 || len(recs) == 0) {
		err = fmt.Errorf("%w: not a checkpoint text", auditlog.ErrMalformedCheckpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []*auditlog.Checkpoint
	for _, r := range recs {
		c, err := v.VerifyText(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if _, ok := auditlog.TenantOf(c.Origin); !ok {
			return nil, fmt.Errorf("%s: origin %q is not a tenant's audit log", path, c.Origin)
		}
		out = append(out, c)
	}
	return out, nil
}
