package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/signing"
)

// The decision commands: usage errors exit 1, an export that does not verify exits 2
// naming why, and region-keys export writes the simulated regions' registry.
func TestDecisionCommands(t *testing.T) {
	t.Parallel()
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, app.All, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	code, out := run("decision")
	require.Equal(t, 1, code)
	require.Contains(t, out, "usage: fabric decision export|verify")
	code, out = run("decision", "verify", "-bundle", "x.json")
	require.Equal(t, 1, code)
	require.Contains(t, out, "-cosign-key is required")
	code, out = run("decision", "export")
	require.Equal(t, 1, code)
	require.Contains(t, out, "-id is required")
	code, _ = run("region-keys")
	require.Equal(t, 1, code)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "fabric.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600))
	regions := filepath.Join(dir, "region-keys")
	code, out = run("region-keys", "export", "-config", cfg, "-out", regions)
	require.Equal(t, 0, code, out)
	reg, err := regionkeys.LoadDir(regions)
	require.NoError(t, err)
	require.Contains(t, reg.Regions(), "eu-west")
	seed, err := regionkeys.LoadOrCreateSeed(filepath.Join(dir, "data"))
	require.NoError(t, err)
	k, err := regionkeys.Derive(seed, "eu-west")
	require.NoError(t, err)
	require.Equal(t, regionkeys.PublicKeyPEM(k.Public().(ed25519.PublicKey)), string(reg.Trusted()["eu-west"]), "the keys the simulated agents sign with")

	keys := filepath.Join(dir, "keys")
	ak, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	require.NoError(t, ak.WriteFiles(keys))
	cosignPub := filepath.Join(dir, "cosign.pub")
	require.NoError(t, os.WriteFile(cosignPub, signing.NewEd25519Signer(make([]byte, 32)).PublicKeyPEM(), 0o644))
	bad := filepath.Join(dir, "decision.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"format":"decision-fabric/decision-export/v1","surprise":1}`), 0o644))
	code, out = run("decision", "verify", "-bundle", bad, "-cosign-key", cosignPub,
		"-audit-key", filepath.Join(keys, auditlog.Ed25519PubFile), "-mldsa-key", filepath.Join(keys, auditlog.MLDSAPubFile),
		"-region-keys", regions)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "FAIL export: not a decision export")

	// -approver-keys: a folder of *.pub keys; one without keys, or with a file that
	// is not a public key, is an error (exit 1) before anything is verified.
	verifyWith := func(approvers string) (int, string) {
		return run("decision", "verify", "-bundle", bad, "-cosign-key", cosignPub,
			"-audit-key", filepath.Join(keys, auditlog.Ed25519PubFile), "-mldsa-key", filepath.Join(keys, auditlog.MLDSAPubFile),
			"-region-keys", regions, "-approver-keys", approvers)
	}
	approvers := filepath.Join(dir, "approver-keys")
	require.NoError(t, os.MkdirAll(approvers, 0o755))
	code, out = verifyWith(approvers)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "no *.pub files")
	require.NoError(t, os.WriteFile(filepath.Join(approvers, "mallory.pub"), []byte("not a key"), 0o644))
	code, out = verifyWith(approvers)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "mallory.pub")
	require.NoError(t, os.WriteFile(filepath.Join(approvers, "mallory.pub"), signing.NewEd25519Signer(make([]byte, 32)).PublicKeyPEM(), 0o644))
	code, out = verifyWith(approvers)
	require.Equal(t, 2, code, out, "the keys load; the export itself does not verify")
	require.Contains(t, out, "FAIL export: not a decision export")
}
