package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/bundle"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/signing"
)

// errNotVerified makes Main exit 2: the input was read, but it does not verify.
var errNotVerified = errors.New("does not verify")

// decision is `fabric decision export|verify`.
func decision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: fabric decision export|verify [flags] (-h for the flags)")
	}
	switch args[0] {
	case "export":
		return decisionExport(ctx, args[1:], stdout, stderr)
	case "verify":
		return decisionVerify(args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown subcommand %q: want export or verify", args[0])
	}
}

// decisionExport fetches a decision's export from the decision auditor:
//
//	fabric decision export -url http://localhost:9206 -id <proposal id> [-token $TOKEN] [-out decision.json]
func decisionExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("decision export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://localhost:9206", "the decision auditor's REST address")
	id := fs.String("id", "", "the proposal id (required)")
	token := fs.String("token", os.Getenv("TOKEN"), "bearer token with the auditor or admin role (default $TOKEN)")
	out := fs.String("out", "", "write the export to this file (default: standard output)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the auditor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("-id is required")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*base, "/")+"/audit/"+url.PathEscape(*id)+"/bundle", nil)
	if err != nil {
		return err
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, bundle.MaxExportBytes+1))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the auditor answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if _, err := bundle.ParseExport(body); err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(body)
		return err
	}
	return os.WriteFile(*out, body, 0o644)
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// decisionVerify checks a decision export offline, with the public keys alone:
//
//	fabric decision verify -bundle decision.json -cosign-key cosign.pub \
//	    -audit-key audit-checkpoint-ed25519.pub -mldsa-key audit-checkpoint-mldsa65.pub \
//	    -region-keys region-keys/ [-approver-keys approver-keys/] \
//	    [-write-manifest-payload manifest.json -write-manifest-signature manifest.sig]
//
// Every signed approval is checked (the coordinator's signature with the -cosign-key
// keys); with -approver-keys (a folder of the approvers' *.pub cosign public keys)
// each approver's own signature over manifest_sha256 is checked too, else it is
// reported as not checked. It prints every check that passed and exits 0, or names the first failure and exits
// 2 (1 for unreadable input). The -write-* files are written before verifying, so the
// cosign CLI can check the same bytes independently.
func decisionVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("decision verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("bundle", "", "the decision export (fabric decision export, or GET /audit/{id}/bundle) (required)")
	var cosignKeys listFlag
	fs.Var(&cosignKeys, "cosign-key", "a trusted cosign public key (cosign.pub) for the manifest and consensus bundle signatures; repeat for several (required)")
	auditKey := fs.String("audit-key", "", "the audit checkpoint note verifier key ("+auditlog.Ed25519PubFile+") (required)")
	mldsaKey := fs.String("mldsa-key", "", "the audit checkpoint ML-DSA-65 public key ("+auditlog.MLDSAPubFile+") (required)")
	regionDir := fs.String("region-keys", "", "the region key registry: a folder of <region>.pub files (fabric region-keys export) (required)")
	approverDir := fs.String("approver-keys", "", "a folder of the approvers' trusted public keys (*.pub, cosign format): check each approver's own signature over manifest_sha256")
	allowUnsigned := fs.Bool("allow-unsigned-manifest", false, "accept a manifest submitted without a signature (simulation only)")
	manifestPayload := fs.String("write-manifest-payload", "", "write the manifest's canonical JSON (the signed bytes) to this file")
	manifestSig := fs.String("write-manifest-signature", "", "write the manifest's base64 signature to this file")
	bundlePayload := fs.String("write-bundle-payload", "", "write the consensus bundle's canonical JSON (the signed bytes) to this file")
	bundleSig := fs.String("write-bundle-signature", "", "write the consensus bundle's base64 signature to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *path == "":
		return errors.New("-bundle is required")
	case len(cosignKeys) == 0:
		return errors.New("-cosign-key is required (the fabric's cosign.pub)")
	case *auditKey == "" || *mldsaKey == "":
		return errors.New("-audit-key and -mldsa-key are required (the audit checkpoint public keys)")
	case *regionDir == "":
		return errors.New("-region-keys is required (a folder of <region>.pub files)")
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	keys, err := verifierKeys(cosignKeys, *auditKey, *mldsaKey, *regionDir)
	if err != nil {
		return err
	}
	keys.AllowUnsignedManifest = *allowUnsigned
	if *approverDir != "" {
		if keys.ApproverKeys, err = approverKeys(*approverDir); err != nil {
			return err
		}
	}

	x, err := bundle.ParseExport(raw)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return fmt.Errorf("%s %w: %w", *path, errNotVerified, err)
	}
	// The signed bytes, for an independent check with `cosign verify-blob`.
	if *manifestPayload != "" {
		m, _, err := manifestpkg.Canonical(x.GetManifest())
		if err != nil {
			return err
		}
		if err := os.WriteFile(*manifestPayload, m, 0o644); err != nil {
			return err
		}
	}
	if *manifestSig != "" {
		if err := os.WriteFile(*manifestSig, []byte(x.GetManifestSignature().GetSignature()), 0o644); err != nil {
			return err
		}
	}
	if *bundlePayload != "" {
		b, err := bundle.Payload(x.GetConsensusBundle())
		if err != nil {
			return err
		}
		if err := os.WriteFile(*bundlePayload, b, 0o644); err != nil {
			return err
		}
	}
	if *bundleSig != "" {
		if err := os.WriteFile(*bundleSig, []byte(x.GetConsensusBundle().GetSignature().GetSignature()), 0o644); err != nil {
			return err
		}
	}

	rep, verr := bundle.VerifyExport(x, keys)
	for _, s := range rep.Steps {
		fmt.Fprintf(stdout, "ok   %s: %s\n", s.Name, s.Detail)
	}
	if verr != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", verr)
		return fmt.Errorf("%s %w: %w", *path, errNotVerified, verr)
	}
	fmt.Fprintf(stdout, "verified: decision %s of tenant %s, offline, with the given public keys only\n", x.GetProposalId(), x.GetTenantId())
	return nil
}

// verifierKeys reads the public keys an offline verification trusts.
func verifierKeys(cosignKeys []string, auditKey, mldsaKey, regionDir string) (bundle.Keys, error) {
	ring := &signing.Keyring{}
	if err := ring.AddFiles(cosignKeys...); err != nil {
		return bundle.Keys{}, err
	}
	vkey, err := os.ReadFile(auditKey)
	if err != nil {
		return bundle.Keys{}, err
	}
	mpub, err := os.ReadFile(mldsaKey)
	if err != nil {
		return bundle.Keys{}, err
	}
	v, err := auditlog.NewVerifier(strings.TrimSpace(string(vkey)), mpub)
	if err != nil {
		return bundle.Keys{}, fmt.Errorf("audit checkpoint keys: %w", err)
	}
	reg, err := regionkeys.LoadDir(regionDir)
	if err != nil {
		return bundle.Keys{}, err
	}
	return bundle.Keys{Cosign: ring, Audit: v, Regions: reg.Trusted()}, nil
}

// approverKeys reads a folder of approvers' public keys (*.pub, "PUBLIC KEY" PEM).
// A folder without keys is an error: it would check nothing.
func approverKeys(dir string) (*signing.Keyring, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("-approver-keys %s: no *.pub files", dir)
	}
	ring := &signing.Keyring{}
	if err := ring.AddFiles(paths...); err != nil {
		return nil, fmt.Errorf("-approver-keys: %w", err)
	}
	return ring, nil
}

// regionKeysExport is `fabric region-keys export`: it writes the region key registry
// the configuration gives (region_keys_dir, or the simulated regions' keys derived
// from the negotiator's seed in data_dir) as a folder of <region>.pub files, for a
// verifier or for region_keys_dir.
func regionKeysExport(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "export" {
		return errors.New("usage: fabric region-keys export [-config FILE] -out DIR")
	}
	fs := flag.NewFlagSet("region-keys export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (for data_dir, regions_file, region_keys_dir)")
	out := fs.String("out", "", "folder to write <region>.pub files to (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	cfg, err := loadConfig(*configPath, "", "")
	if err != nil {
		return err
	}
	reg, err := app.RegionRegistry(cfg)
	if err != nil {
		return err
	}
	if err := reg.WriteDir(*out); err != nil {
		return err
	}
	for _, name := range reg.Regions() {
		k, _ := reg.Key(name)
		fmt.Fprintf(stdout, "%s  %s\n", filepath.Join(*out, name+regionkeys.FileSuffix), regionkeys.KeyID(k))
	}
	return nil
}
