// Command genschema rewrites infra/sql/i4_decision_schema.sql from the
// store's embedded Postgres migrations.
//
//	go run ./internal/store/cmd/genschema          # rewrite
//	go run ./internal/store/cmd/genschema -check   # exit 1 if the file is stale
//
// It runs from anywhere inside the module (go generate runs it from
// internal/store); -o overrides the output path.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/decision-fabric/fabric/internal/modroot"

	"github.com/decision-fabric/fabric/internal/store"
)

const relPath = "infra/sql/i4_decision_schema.sql"

func main() {
	out := flag.String("o", "", "output file (default: <module root>/"+relPath+")")
	check := flag.Bool("check", false, "do not write; exit 1 if the file differs")
	flag.Parse()
	if err := run(*out, *check); err != nil {
		fmt.Fprintln(os.Stderr, "genschema:", err)
		os.Exit(1)
	}
}

func run(out string, check bool) error {
	if out == "" {
		root, err := modroot.Find()
		if err != nil {
			return err
		}
		out = filepath.Join(root, relPath)
	}
	want, err := store.PostgresSchemaSQL()
	if err != nil {
		return err
	}
	if check {
		got, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s is stale: run go run ./internal/store/cmd/genschema", out)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, want, 0o644)
}
