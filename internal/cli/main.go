// Package cli is the command line of `fabric` and of every services/<name> binary: flag
// parsing and the subcommands (serve, precheck, token, policy, decision, canary, region-keys,
// audit-verify, witness, version). Serving itself is internal/app's module graph
// (app.Start); this package only turns arguments into a configuration and calls it.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditcmd"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/precheck"
)

// Main is the command line of `fabric` and of every services/<name> binary:
//
//	fabric [serve] [-config FILE] [-target all|<service>] [-list-targets] [-print-config]
//	fabric precheck [-reports-dir DIR]
//	fabric token [-config FILE] -tenant T [-role R[,R]] [-subject S] [-ttl 24h]
//	fabric policy check FILE
//	fabric decision export -url URL -id ID [-token T] [-out FILE]
//	fabric canary replay -url URL -policy FILE -from T [-to T] | -id ID ... [-region NAME[=W] ...] [-token T] [-json]
//	fabric decision verify -bundle FILE -cosign-key PUB -audit-key PUB -mldsa-key PUB -region-keys DIR [-approver-keys DIR]
//	fabric region-keys export [-config FILE] -out DIR
//	fabric audit-verify [-data-dir DIR] [-trusted-checkpoint FILE] [-witness-key FILE] ...
//	fabric witness init|serve ...
//	fabric version
//
// defaultTarget is "all" for cmd/fabric and the service's name for services/<name>.
// It returns the process exit code: 0, 1 on an error, 2 when `decision verify` finds
// that a decision does not verify or `audit-verify` that an audit log does not.
func Main(ctx context.Context, args []string, defaultTarget string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, defaultTarget, stdout, stderr)
	case "precheck":
		return precheck.Main(ctx, args, stdout, func(path string) (precheck.Env, error) {
			cfg, err := loadConfig(path, "", "")
			return app.PrecheckEnv(cfg), err
		})
	case "token":
		err = token(args, stdout, stderr)
	case "totp":
		err = totpCode(args, stdout, stderr)
	case "policy":
		err = policyCheck(args, stdout)
	case "decision":
		err = decision(ctx, args, stdout, stderr)
	case "canary":
		err = canary(ctx, args, stdout, stderr)
	case "region-keys":
		err = regionKeysExport(args, stdout, stderr)
	case "audit-verify":
		if err = auditcmd.Verify(ctx, args, stdout, stderr); errors.Is(err, auditcmd.ErrTampered) {
			err = fmt.Errorf("%w: %w", errNotVerified, err)
		}
	case "witness":
		err = auditcmd.Witness(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, fabric.Version)
	default:
		err = fmt.Errorf("unknown command %q (commands: serve, precheck, token, policy, decision, canary, region-keys, audit-verify, witness, version)", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errNotVerified) {
		fmt.Fprintf(stderr, "fabric %s: %v\n", cmd, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "fabric %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, args []string, defaultTarget string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (see services/<name>/config.example.yaml)")
	target := fs.String("target", "", "what to run: all or one service (default: "+defaultTarget+")")
	list := fs.Bool("list-targets", false, "list the targets and exit")
	printCfg := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, t := range app.Targets() {
			fmt.Fprintln(stdout, t)
		}
		return nil
	}
	cfg, err := loadConfig(*configPath, defaultTarget, *target)
	if err != nil {
		return err
	}
	if *printCfg {
		fmt.Fprint(stdout, cfg.Redacted())
		return nil
	}
	r, err := app.Start(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	announce(r, stderr)
	return r.Wait()
}

// loadConfig applies defaults (a service binary serves its own service), the file, the
// environment, then the -target flag.
func loadConfig(path, defaultTarget, target string) (config.Config, error) {
	return config.LoadTarget(path, app.LookupEnv, defaultTarget, target)
}

// announce tells a developer where everything listens and, in simulation with the
// development key, prints a ready-to-use token. It writes to stderr, never to the log.
func announce(r *app.Running, w io.Writer) {
	backend := "none"
	if r.App.Store != nil {
		backend = r.App.Store.Backend()
	}
	fmt.Fprintf(w, "\nDecision Fabric %s — precheck %s, simulation_mode=%v, store=%s\n",
		fabric.Version, r.App.Precheck.Decision, r.App.Simulation, backend)
	for _, name := range fabric.Names() {
		if s, ok := r.Servers[name]; ok {
			fmt.Fprintf(w, "  %-22s REST http://%s  gRPC %s\n", name, reachable(s.HTTPAddr()), reachable(s.GRPCAddr()))
		}
	}
	if r.App.DevSigner != nil {
		tok, err := r.App.DevSigner.Mint("dev", "t1", []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor}, 24*time.Hour)
		if err == nil {
			fmt.Fprintf(w, "\nDevelopment token (tenant t1, roles proposer,approver,auditor, 24h):\n  export TOKEN=%s\n"+
				"More: make token TENANT=t2 ROLE=proposer\n\n", tok)
		}
	}
}

// policyCheck validates a decision policy file: `fabric policy check FILE`.
func policyCheck(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return errors.New("usage: fabric policy check FILE")
	}
	if err := policy.Check(args[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[1])
	return nil
}

// reachable turns a wildcard listen address into one a developer can paste.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (for data_dir, issuer, audience)")
	tenant := fs.String("tenant", "t1", "tenant claim")
	roles := fs.String("role", auth.RoleProposer, "comma-separated roles: "+strings.Join(auth.KnownRoles, ", "))
	subject := fs.String("subject", "dev", "subject claim (the person or agent; an approver votes as it)")
	groups := fs.String("groups", "", "comma-separated groups claim (approval rules filter reviewers by group), e.g. sre,oncall")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath, "", "")
	if err != nil {
		return err
	}
	if cfg.Auth.PublicKeyFile != "" {
		return errors.New("tokens are issued by your identity provider when auth.public_key_file is set; this command only mints development tokens")
	}
	if slices.Contains(strings.Split(*roles, ","), auth.RoleService) {
		return errors.New("the service role is the fabric's own identity: its services mint it with the service key; it is never issued to a person or agent")
	}
	key, err := auth.LoadOrCreateDevKey(cfg.DataDir)
	if err != nil {
		return err
	}
	var gs []string
	if *groups != "" {
		gs = strings.Split(*groups, ",")
	}
	tok, err := auth.NewSigner(key, cfg.Auth.Issuer, cfg.Auth.Audience).MintWithGroups(*subject, *tenant, strings.Split(*roles, ","), gs, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// Run is the whole body of a main function: it wires SIGINT/SIGTERM to a graceful
// shutdown, runs Main with the process arguments and exits with its code.
func Run(defaultTarget string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], defaultTarget, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
