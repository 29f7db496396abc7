package auditcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/decision-fabric/fabric/internal/witness"
)

// Witness is `fabric witness`:
//
//	fabric witness init -dir DIR -name NAME      create the witness's key (prints its verifier key)
//	fabric witness serve -dir DIR -log-key FILE [-addr 127.0.0.1:9207]
//
// serve answers tlog-witness's POST /add-checkpoint until ctx ends, cosigning
// only checkpoints of the log (the auditor's audit-checkpoint-ed25519.pub)
// consistent with the last one it cosigned; its state is DIR/witness.json.
func Witness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: fabric witness init|serve [flags]")
	}
	fs := flag.NewFlagSet("witness "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "witness", "the witness's folder: "+witness.KeyFile+", "+witness.PubFile+", "+witness.StateFile)
	switch args[0] {
	case "init":
		name := fs.String("name", "", "the witness's name in cosignatures, e.g. witness.example.com (required)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return errors.New("-name is required")
		}
		vkey, err := witness.GenerateKey(*dir, *name)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, vkey)
		return nil
	case "serve":
		logKey := fs.String("log-key", "", "the audit log's note verifier key file (audit-checkpoint-ed25519.pub; required)")
		addr := fs.String("addr", "127.0.0.1:9207", "listen address")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		raw, err := os.ReadFile(*logKey)
		if err != nil {
			return fmt.Errorf("-log-key: %w", err)
		}
		w, err := witness.Open(*dir, string(raw))
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
		fmt.Fprintf(stderr, "witness %s listening on http://%s%s\n", w.Verifier().Name(), ln.Addr(), witness.AddCheckpointPath)
		go func() {
			<-ctx.Done()
			shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shut)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown witness command %q (init, serve)", args[0])
}
