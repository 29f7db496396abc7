// Command genexamples writes services/<name>/config.example.yaml for every service
// from internal/config (config.Example: the defaults and the documentation of each key).
//
//	go run ./internal/config/cmd/genexamples          # rewrite
//	go run ./internal/config/cmd/genexamples -check   # exit 1 if one is stale
//
// It runs from anywhere inside the module; -root overrides the module root.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/modroot"
)

func main() {
	root := flag.String("root", "", "module root (default: found from the working directory)")
	check := flag.Bool("check", false, "do not write; exit 1 if an example differs")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "genexamples:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	if root == "" {
		var err error
		if root, err = modroot.Find(); err != nil {
			return err
		}
	}
	var stale []string
	for _, name := range fabric.Names() {
		want, err := config.Example(name)
		if err != nil {
			return err
		}
		path := filepath.Join(root, "services", name, "config.example.yaml")
		if check {
			have, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(have, want) {
				stale = append(stale, path)
			}
			continue
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return err
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("stale (run go run ./internal/config/cmd/genexamples): %v", stale)
	}
	return nil
}
