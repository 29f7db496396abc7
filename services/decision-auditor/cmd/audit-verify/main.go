// Command audit-verify recomputes the audit log from the store with only the public
// checkpoint keys, holds it to the checkpoints published outside the store, and names
// the first entry of each tenant's log that was altered, removed, reordered or left
// unsigned; it is `fabric audit-verify` (internal/auditcmd), kept as its own binary:
//
//	go run ./services/decision-auditor/cmd/audit-verify -data-dir data -keys data/keys
//	go run ./services/decision-auditor/cmd/audit-verify -tenant t1 -trusted-checkpoint t1.checkpoint
//
// It exits 0 when every log verifies, 1 on an error, and 2 when tampering is found.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/decision-fabric/fabric/internal/auditcmd"
)

// errTampered makes main exit 2.
var errTampered = auditcmd.ErrTampered

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
	return auditcmd.Verify(ctx, args, out, os.Stderr)
}
