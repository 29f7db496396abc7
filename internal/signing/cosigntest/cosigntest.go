// Package cosigntest finds and runs the real cosign CLI for interoperability tests.
package cosigntest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/modroot"
)

// Binary returns the cosign CLI: COSIGN_BIN, else `cosign` on PATH, else the one `make
// cosign` installs in the repository's .tools/bin. Without one the test is skipped, but
// fails when CI or FABRIC_REQUIRE_COSIGN is set: CI installs it, so its absence there is
// a broken build, not a reason to skip the interop check.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("COSIGN_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if root, err := modroot.Find(); err == nil {
		p := filepath.Join(root, ".tools", "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	const why = "the cosign CLI is not installed (make cosign, or set COSIGN_BIN)"
	if os.Getenv("CI") != "" || os.Getenv("FABRIC_REQUIRE_COSIGN") != "" {
		t.Fatal(why + "; CI must run the interop tests")
	}
	t.Skip(why)
	return ""
}

// Run runs the CLI in workDir, offline: an isolated HOME and TUF root, the given
// password in COSIGN_PASSWORD, a bounded run time. verify-blob fetches Sigstore's TUF
// trusted root unless one of the SIGSTORE_* key variables is set; with --key and
// --insecure-ignore-tlog nothing from it is used, so SIGSTORE_CT_LOG_PUBLIC_KEY_FILE
// (read only for keyless certificate SCTs) points at a throwaway key and the CLI makes
// no network request at all.
func Run(t testing.TB, bin, workDir string, password []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	home := filepath.Join(workDir, ".cosign-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ctPub := filepath.Join(home, "unused-ctlog.pub")
	der, err := x509.MarshalPKIXPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ctPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = workDir
	cmd.Env = []string{
		"HOME=" + home,
		"SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + ctPub,
		"TUF_ROOT=" + filepath.Join(home, ".sigstore", "root"),
		"PATH=" + os.Getenv("PATH"),
		"COSIGN_PASSWORD=" + string(password),
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	t.Logf("cosign %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out.String(), errOut.String())
	if ctx.Err() != nil {
		t.Fatalf("cosign %v timed out (is it trying the network?)", args)
	}
	return out.String(), errOut.String(), err
}
