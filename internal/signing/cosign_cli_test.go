package signing

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decision-fabric/fabric/internal/signing/cosigntest"
)

// TestCosignCLIInterop checks both directions against the real cosign CLI: our
// signatures verify with `cosign verify-blob`, and `cosign sign-blob` signatures made
// with our generated key file verify with Verify. Skipped when cosign is not on PATH.
func TestCosignCLIInterop(t *testing.T) {
	bin := cosigntest.Binary(t)
	payload := testPayload(t)
	password := []byte("interop-pass")

	t.Run("our signature, cosign verify-blob", func(t *testing.T) {
		dir := t.TempDir()
		s, err := GenerateCosignKey(filepath.Join(dir, "k"), password)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		blob := filepath.Join(dir, "blob.json")
		sigPath := filepath.Join(dir, "blob.sig")
		pubPath := filepath.Join(dir, "k", CosignPubFile)
		writeFile(t, blob, payload)
		writeFile(t, sigPath, []byte(sig))

		if _, _, err := cosigntest.Run(t, bin, dir, nil, "verify-blob", "--key", pubPath, "--signature", sigPath,
			"--insecure-ignore-tlog=true", blob); err != nil {
			t.Fatalf("cosign verify-blob rejected our signature: %v", err)
		}

		writeFile(t, blob, flipByte(payload, len(payload)/2))
		_, stderr, err := cosigntest.Run(t, bin, dir, nil, "verify-blob", "--key", pubPath, "--signature", sigPath,
			"--insecure-ignore-tlog=true", blob)
		if err == nil {
			t.Fatal("cosign verify-blob accepted a signature over a payload with one byte changed")
		}
		if !isExitError(err) || !strings.Contains(stderr, "invalid signature") {
			t.Fatalf("cosign failed, but not with a signature mismatch: %v", err)
		}
	})

	t.Run("cosign sign-blob, our Verify", func(t *testing.T) {
		dir := t.TempDir()
		s, err := GenerateCosignKey(dir, password)
		if err != nil {
			t.Fatal(err)
		}
		blob := filepath.Join(dir, "blob.json")
		writeFile(t, blob, payload)
		// The signature is printed on stdout (base64 of ASN.1 ECDSA over SHA-256).
		cliSig, _, err := cosigntest.Run(t, bin, dir, password, "sign-blob", "--key", filepath.Join(dir, CosignKeyFile),
			"--tlog-upload=false", "--yes", blob)
		if err != nil {
			t.Fatalf("cosign sign-blob with our generated key: %v", err)
		}
		if strings.TrimSpace(cliSig) == "" {
			t.Fatal("cosign sign-blob printed no signature")
		}
		if err := Verify(s.PublicKeyPEM(), payload, cliSig); err != nil {
			t.Fatalf("Verify rejected cosign's signature: %v", err)
		}
		if err := Verify(s.PublicKeyPEM(), flipByte(payload, 0), cliSig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("changed payload: got %v, want ErrBadSignature", err)
		}
		var k Keyring
		id, err := k.Add(mustRead(t, filepath.Join(dir, CosignPubFile)))
		if err != nil || id != s.KeyID() {
			t.Fatalf("Keyring.Add(cosign.pub) = %s, %v", id, err)
		}
		if err := k.Verify(id, payload, cliSig); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cosign generate-key-pair, our LoadCosignKey", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := cosigntest.Run(t, bin, dir, password, "generate-key-pair"); err != nil {
			t.Fatalf("cosign generate-key-pair: %v", err)
		}
		s, err := LoadCosignKey(filepath.Join(dir, CosignKeyFile), password)
		if err != nil {
			t.Fatalf("LoadCosignKey(CLI key): %v", err)
		}
		cliPub := mustRead(t, filepath.Join(dir, CosignPubFile))
		if id, err := KeyIDFromPEM(cliPub); err != nil || id != s.KeyID() {
			t.Fatalf("CLI cosign.pub key id %s (%v), loaded key id %s", id, err, s.KeyID())
		}
		if _, err := LoadCosignKey(filepath.Join(dir, CosignKeyFile), []byte("wrong")); err == nil {
			t.Fatal("wrong password accepted for CLI key")
		}
		sig, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		blob := filepath.Join(dir, "blob.json")
		sigPath := filepath.Join(dir, "blob.sig")
		writeFile(t, blob, payload)
		writeFile(t, sigPath, []byte(sig))
		if _, _, err := cosigntest.Run(t, bin, dir, nil, "verify-blob", "--key", filepath.Join(dir, CosignPubFile),
			"--signature", sigPath, "--insecure-ignore-tlog=true", blob); err != nil {
			t.Fatalf("cosign verify-blob rejected a signature by its own key loaded here: %v", err)
		}
	})
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
