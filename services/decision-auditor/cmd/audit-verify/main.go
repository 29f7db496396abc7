// Command audit-verify recomputes the audit log from the store with only the public
// checkpoint keys, and names the first entry of each tenant's log that was altered,
// removed or reordered:
//
//	go run ./services/decision-auditor/cmd/audit-verify -data-dir data -keys data/keys
//	go run ./services/decision-auditor/cmd/audit-verify -tenant t1   # POSTGRES_DSN from the environment
//
// It exits 0 when every log verifies, 1 on an error, and 2 when tampering is found.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
)

// errTampered makes main exit 2.
var errTampered = errors.New("the audit log does not verify")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := realMain(ctx, os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, errTampered):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "audit-verify:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit-verify", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "data", "the embedded store's folder (ignored with -postgres-dsn)")
	dsn := fs.String("postgres-dsn", os.Getenv("POSTGRES_DSN"), "Postgres store (default $POSTGRES_DSN)")
	keys := fs.String("keys", "", "folder with the public keys "+auditlog.Ed25519PubFile+" and "+auditlog.MLDSAPubFile+" (default <data-dir>/keys)")
	tenant := fs.String("tenant", "", "verify one tenant's log (default: every tenant's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keys == "" {
		*keys = filepath.Join(*dataDir, "keys")
	}
	vkey, err := os.ReadFile(filepath.Join(*keys, auditlog.Ed25519PubFile))
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(filepath.Join(*keys, auditlog.MLDSAPubFile))
	if err != nil {
		return err
	}
	v, err := auditlog.NewVerifier(string(vkey), pub)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Config{PostgresDSN: *dsn, DataDir: *dataDir})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	rep, err := auditlog.VerifyStore(ctx, st, v, *tenant)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, t := range rep.Tenants {
		switch {
		case t.OK():
			fmt.Fprintf(out, "ok       %s: %d entries, %d checkpoints\n", t.TenantID, t.Entries, t.Checkpoints)
		default:
			if t.Problem != nil {
				fmt.Fprintf(out, "TAMPERED %s: entry %d %s: %s\n", t.TenantID, t.Problem.Index, t.Problem.Kind, t.Problem.Detail)
			}
			for _, p := range t.CheckpointProblems {
				fmt.Fprintf(out, "TAMPERED %s: %s\n", t.TenantID, p.Detail)
			}
		}
	}
	if !rep.OK() {
		return errTampered
	}
	return nil
}
