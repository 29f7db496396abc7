package precheck

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Exit codes of Main.
const (
	ExitOK    = 0 // PROCEED or PROCEED_SIMULATION
	ExitError = 1 // the report could not be written
	ExitBlock = 2 // BLOCK (also returned for a command-line usage error)
)

// EnvLoader builds the precheck's inputs from a configuration file (path "" = none)
// and the environment, the way the fabric does at start, so `fabric precheck` decides
// as `fabric serve` would.
type EnvLoader func(configPath string) (Env, error)

// Main runs the precheck, writes the report files and prints a short summary to
// stdout. It returns 0 for PROCEED and PROCEED_SIMULATION, 2 for BLOCK or a usage
// error, and 1 when the configuration cannot be read or the report files cannot be
// written. It is meant to be wired to `fabric precheck`; load reads -config (nil: the
// process environment alone).
//
// Flags:
//
//	-config FILE       the fabric's configuration, as `fabric -config FILE` reads it
//	-reports-dir DIR   where I.4_precheck.json and logs/ go (default "reports")
//	-timeout DURATION  per-check timeout (default 2s)
func Main(ctx context.Context, args []string, stdout io.Writer, load EnvLoader) int {
	if load == nil {
		load = func(string) (Env, error) { return FromEnviron(os.LookupEnv), nil }
	}
	return mainWithEnv(ctx, args, stdout, load)
}

func mainWithEnv(ctx context.Context, args []string, stdout io.Writer, load EnvLoader) int {
	if stdout == nil {
		stdout = io.Discard
	}
	fs := flag.NewFlagSet("precheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	configPath := fs.String("config", "", "YAML configuration file (as for serving); the environment overrides it")
	reportsDir := fs.String("reports-dir", "reports", "directory for I.4_precheck.json and logs/I.4_precheck.log")
	timeout := fs.Duration("timeout", DefaultCheckTimeout, "timeout of each check (checks run concurrently)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: fabric precheck [-config FILE] [-reports-dir DIR] [-timeout DURATION]")
		fmt.Fprintln(fs.Output(), "Runs the phase I.4 compliance precheck; see docs/compliance-precheck_I.4.md.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitBlock
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdout, "precheck: unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return ExitBlock
	}
	if *timeout <= 0 {
		fmt.Fprintln(stdout, "precheck: -timeout must be positive")
		return ExitBlock
	}
	if ctx == nil {
		ctx = context.Background()
	}

	env, err := load(*configPath)
	if err != nil {
		fmt.Fprintf(stdout, "precheck: %v\n", err)
		return ExitError
	}
	report := Run(ctx, env, Options{Timeout: *timeout})
	fmt.Fprint(stdout, report.Summary())

	if err := report.WriteFiles(*reportsDir); err != nil {
		fmt.Fprintf(stdout, "precheck: cannot write the report: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "report: %s\nlog: %s\n",
		filepath.Join(*reportsDir, ReportFileName),
		filepath.Join(*reportsDir, filepath.FromSlash(LogFileName)))

	if report.Decision == Block {
		return ExitBlock
	}
	return ExitOK
}
