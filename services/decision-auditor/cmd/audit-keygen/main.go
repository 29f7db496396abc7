// Command audit-keygen provisions the audit log's checkpoint signing keys (Ed25519 for
// the C2SP signed note, ML-DSA-65 beside it) for a production auditor, which never
// creates keys itself:
//
//	go run ./services/decision-auditor/cmd/audit-keygen -dir data/keys
//
// It writes the private keys 0600 and the public keys 0644, refuses to overwrite an
// existing key, and prints the public keys to publish to auditors.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/decision-fabric/fabric/internal/auditlog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "audit-keygen:", err)
		os.Exit(1)
	}
}

func realMain(_ context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit-keygen", flag.ContinueOnError)
	dir := fs.String("dir", "data/keys", "folder to write the keys into (created 0700)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := auditlog.GenerateKeys()
	if err != nil {
		return fmt.Errorf("generate keys: %w", err)
	}
	if err := k.WriteFiles(*dir); err != nil {
		return fmt.Errorf("write keys: %w", err)
	}
	v := k.Verifier()
	fmt.Fprintf(out, "wrote %s/{%s,%s,%s,%s}\n", *dir, auditlog.Ed25519KeyFile, auditlog.Ed25519PubFile, auditlog.MLDSAKeyFile, auditlog.MLDSAPubFile)
	fmt.Fprintf(out, "note verifier key: %s\nML-DSA-65 key id:  %s\n", v.NoteVerifierKey(), v.MLDSAKeyID())
	return nil
}
