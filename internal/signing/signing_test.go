package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// testPayload is canonical JSON, the kind of bytes the fabric signs.
func testPayload(t testing.TB) []byte {
	t.Helper()
	b, err := canonical.Marshal(map[string]any{
		"proposal_id": "p-42",
		"policy":      "budget",
		"scores":      []any{0.5, 1, 1e21},
		"regions":     map[string]any{"eu": "approve", "us": "reject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestECDSA(t testing.TB) Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newECDSASignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newFixedECDSA returns a deterministic P-256 signer (private scalar b repeated), for
// fuzz seeds, which must be the same in every fuzz worker process.
func newFixedECDSA(t testing.TB, b byte) Signer {
	t.Helper()
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newECDSASignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestEd25519(t testing.TB, b byte) Signer {
	t.Helper()
	return NewEd25519Signer(bytes.Repeat([]byte{b}, 32))
}

func signers(t *testing.T) map[string]Signer {
	return map[string]Signer{
		"ecdsa":   newTestECDSA(t),
		"ed25519": newTestEd25519(t, 7),
	}
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestRoundTrip(t *testing.T) {
	payload := testPayload(t)
	for name, s := range signers(t) {
		t.Run(name, func(t *testing.T) {
			sig, err := s.Sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(s.PublicKeyPEM(), payload, sig); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// A trailing newline (as in a signature file) is tolerated.
			if err := Verify(s.PublicKeyPEM(), payload, sig+"\n"); err != nil {
				t.Fatalf("Verify with newline: %v", err)
			}
			for _, i := range []int{0, len(payload) / 2, len(payload) - 1} {
				err := Verify(s.PublicKeyPEM(), flipByte(payload, i), sig)
				if !errors.Is(err, ErrBadSignature) {
					t.Fatalf("flipped payload byte %d: got %v, want ErrBadSignature", i, err)
				}
			}
			if err := Verify(s.PublicKeyPEM(), append(bytes.Clone(payload), ' '), sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("extended payload: got %v, want ErrBadSignature", err)
			}
			raw, _ := base64.StdEncoding.DecodeString(sig)
			bad := base64.StdEncoding.EncodeToString(flipByte(raw, len(raw)-1))
			if err := Verify(s.PublicKeyPEM(), payload, bad); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("flipped signature: got %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestSignatureFormats(t *testing.T) {
	payload := testPayload(t)

	t.Run("ecdsa is ASN.1 over SHA-256", func(t *testing.T) {
		s := newTestECDSA(t)
		sig, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			t.Fatal(err)
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(raw, &rs); err != nil || len(rest) != 0 {
			t.Fatalf("not a DER ECDSA signature: %v (rest %d)", err, len(rest))
		}
		pub := parseTestPub(t, s.PublicKeyPEM()).(*ecdsa.PublicKey)
		digest := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(pub, digest[:], raw) {
			t.Fatal("stdlib ecdsa.VerifyASN1 over SHA-256(payload) rejects the signature")
		}
		// IEEE P1363 (r||s) is accepted too, as by cosign.
		p1363 := make([]byte, 64)
		rs.R.FillBytes(p1363[:32])
		rs.S.FillBytes(p1363[32:])
		if err := Verify(s.PublicKeyPEM(), payload, base64.StdEncoding.EncodeToString(p1363)); err != nil {
			t.Fatalf("P1363 form: %v", err)
		}
	})

	t.Run("ed25519 is raw pure Ed25519", func(t *testing.T) {
		s := newTestEd25519(t, 3)
		sig, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != ed25519.SignatureSize {
			t.Fatalf("signature length %d", len(raw))
		}
		pub := parseTestPub(t, s.PublicKeyPEM()).(ed25519.PublicKey)
		if !ed25519.Verify(pub, payload, raw) {
			t.Fatal("stdlib ed25519.Verify rejects the signature")
		}
		// Deterministic key and signature from the seed.
		s2 := newTestEd25519(t, 3)
		sig2, _ := s2.Sign(payload)
		if sig2 != sig || s2.KeyID() != s.KeyID() || !bytes.Equal(s2.PublicKeyPEM(), s.PublicKeyPEM()) {
			t.Fatal("same seed gave a different key or signature")
		}
		if newTestEd25519(t, 4).KeyID() == s.KeyID() {
			t.Fatal("different seeds gave the same key id")
		}
	})
}

func parseTestPub(t *testing.T, pemBytes []byte) any {
	t.Helper()
	blk, rest := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("bad public key PEM %q", pemBytes)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestKeyID(t *testing.T) {
	for name, s := range signers(t) {
		t.Run(name, func(t *testing.T) {
			blk, _ := pem.Decode(s.PublicKeyPEM())
			sum := sha256.Sum256(blk.Bytes)
			want := hex.EncodeToString(sum[:])
			if s.KeyID() != want {
				t.Fatalf("KeyID %s, want %s", s.KeyID(), want)
			}
			got, err := KeyIDFromPEM(s.PublicKeyPEM())
			if err != nil || got != want {
				t.Fatalf("KeyIDFromPEM = %s, %v; want %s", got, err, want)
			}
			// Headers and leading text do not change the id.
			withHeaders := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Comment": "x"}, Bytes: blk.Bytes})
			got, err = KeyIDFromPEM(append([]byte("leading text\n"), withHeaders...))
			if err != nil || got != want {
				t.Fatalf("KeyIDFromPEM with headers = %s, %v", got, err)
			}
		})
	}
	if _, err := KeyIDFromPEM([]byte("nope")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	payload := testPayload(t)
	a, b := newTestECDSA(t), newTestECDSA(t)
	e1, e2 := newTestEd25519(t, 1), newTestEd25519(t, 2)
	cases := []struct {
		name       string
		signer     Signer
		verifyWith Signer
	}{
		{"ecdsa-ecdsa", a, b},
		{"ed25519-ed25519", e1, e2},
		{"ecdsa-ed25519", a, e1},
		{"ed25519-ecdsa", e1, a},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, err := c.signer.Sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(c.verifyWith.PublicKeyPEM(), payload, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("got %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestMalformedInput(t *testing.T) {
	payload := testPayload(t)
	s := newTestECDSA(t)
	e := newTestEd25519(t, 9)
	sig, _ := s.Sign(payload)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	ecDER, _ := pem.Decode(s.PublicKeyPEM())

	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	badPEMs := map[string][]byte{
		"nil":           nil,
		"empty":         {},
		"text":          []byte("not a pem"),
		"private label": pemOf("EC PRIVATE KEY", ecDER.Bytes),
		"certificate":   pemOf("CERTIFICATE", ecDER.Bytes),
		"garbage DER":   pemOf("PUBLIC KEY", []byte{0x30, 0x03, 0x01, 0x02, 0x03}),
		"truncated DER": pemOf("PUBLIC KEY", ecDER.Bytes[:len(ecDER.Bytes)-5]),
		"rsa":           pemOf("PUBLIC KEY", rsaDER),
		"p384":          pemOf("PUBLIC KEY", p384DER),
		"pkcs1 rsa":     pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)),
		"truncated pem": s.PublicKeyPEM()[:40],
	}
	for name, p := range badPEMs {
		t.Run("pem/"+name, func(t *testing.T) {
			err := Verify(p, payload, sig)
			if err == nil || errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			var k Keyring
			if _, err := k.Add(p); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Keyring.Add: %v", err)
			}
		})
	}
	for _, name := range []string{"rsa", "p384", "pkcs1 rsa"} {
		if err := Verify(badPEMs[name], payload, sig); !errors.Is(err, ErrUnsupportedKey) {
			t.Fatalf("%s: %v, want ErrUnsupportedKey", name, err)
		}
	}

	badB64 := map[string]string{
		"empty":       "",
		"spaces":      "   ",
		"not base64":  "!!!not-base64!!!",
		"url alpha":   strings.NewReplacer("+", "-", "/", "_").Replace(sig) + "-_",
		"bad padding": "QUJD=",
		"inner space": sig[:10] + " " + sig[10:],
		"only pad":    "====",
	}
	for name, bs := range badB64 {
		for kname, pub := range map[string][]byte{"ecdsa": s.PublicKeyPEM(), "ed25519": e.PublicKeyPEM()} {
			t.Run("b64/"+name+"/"+kname, func(t *testing.T) {
				err := Verify(pub, payload, bs)
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %v, want ErrMalformed", err)
				}
			})
		}
	}

	// Well-formed base64 that is not a signature is a mismatch, never a panic.
	garbageSigs := map[string][]byte{
		"one byte":  {0x30},
		"asn1 junk": {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00},
		"r=s=0":     make([]byte, 64),
		"huge":      bytes.Repeat([]byte{0xff}, 4096),
		"65 bytes":  bytes.Repeat([]byte{1}, 65),
		"63 bytes":  bytes.Repeat([]byte{1}, 63),
	}
	for name, g := range garbageSigs {
		for kname, pub := range map[string][]byte{"ecdsa": s.PublicKeyPEM(), "ed25519": e.PublicKeyPEM()} {
			t.Run("sig/"+name+"/"+kname, func(t *testing.T) {
				err := Verify(pub, payload, base64.StdEncoding.EncodeToString(g))
				if !errors.Is(err, ErrBadSignature) {
					t.Fatalf("got %v, want ErrBadSignature", err)
				}
			})
		}
	}
}

func TestKeyring(t *testing.T) {
	payload := testPayload(t)
	var k Keyring
	if err := k.Verify("00", payload, "AAAA"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("empty keyring: %v", err)
	}
	all := signers(t)
	for name, s := range all {
		id, err := k.Add(s.PublicKeyPEM())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if id != s.KeyID() {
			t.Fatalf("%s: Add id %s, signer id %s", name, id, s.KeyID())
		}
		if id2, err := k.Add(s.PublicKeyPEM()); err != nil || id2 != id {
			t.Fatalf("re-add: %s %v", id2, err)
		}
	}
	if k.Len() != len(all) {
		t.Fatalf("Len %d", k.Len())
	}
	for name, s := range all {
		sig, _ := s.Sign(payload)
		if err := k.Verify(s.KeyID(), payload, sig); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := k.Verify(s.KeyID(), flipByte(payload, 3), sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s flipped: %v", name, err)
		}
		if err := k.Verify(s.KeyID(), payload, "%%%"); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s bad b64: %v", name, err)
		}
		if p, ok := k.PublicKeyPEM(s.KeyID()); !ok || !bytes.Equal(p, s.PublicKeyPEM()) {
			t.Fatalf("%s: PublicKeyPEM %q %v", name, p, ok)
		}
		other := newTestEd25519(t, 99)
		if err := k.Verify(other.KeyID(), payload, sig); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown: %v", err)
		}
	}
	// Signature made by key A checked under key B's id: mismatch.
	sigA, _ := all["ecdsa"].Sign(payload)
	if err := k.Verify(all["ed25519"].KeyID(), payload, sigA); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cross-key: %v", err)
	}

	// Concurrent use.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := newTestEd25519(t, byte(100+i))
			if _, err := k.Add(s.PublicKeyPEM()); err != nil {
				t.Error(err)
			}
			sig, _ := s.Sign(payload)
			if err := k.Verify(s.KeyID(), payload, sig); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
}

func TestEd25519Generate(t *testing.T) {
	s, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	seed, ok := Ed25519Seed(s)
	if !ok || len(seed) != 32 {
		t.Fatalf("seed %x %v", seed, ok)
	}
	if NewEd25519Signer(seed).KeyID() != s.KeyID() {
		t.Fatal("restoring from the seed gave another key")
	}
	if _, ok := Ed25519Seed(newTestECDSA(t)); ok {
		t.Fatal("Ed25519Seed of an ECDSA signer")
	}
	s2, _ := GenerateEd25519()
	if s2.KeyID() == s.KeyID() {
		t.Fatal("two generated keys are equal")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("short seed did not panic")
		}
	}()
	NewEd25519Signer(make([]byte, 31))
}

func TestGenerateAndLoadCosignKey(t *testing.T) {
	t.Parallel() // scrypt-bound
	dir := t.TempDir()
	password := []byte("correct horse")
	s, err := GenerateCosignKey(dir, password)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, CosignKeyFile)
	pubPath := filepath.Join(dir, CosignPubFile)

	assertMode(t, keyPath, 0o600)
	assertMode(t, pubPath, 0o644)
	keyPEM, _ := os.ReadFile(keyPath)
	if blk, _ := pem.Decode(keyPEM); blk == nil || blk.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" {
		t.Fatalf("key file is not an ENCRYPTED SIGSTORE PRIVATE KEY PEM:\n%s", keyPEM)
	}
	pubPEM, _ := os.ReadFile(pubPath)
	if !bytes.Equal(pubPEM, s.PublicKeyPEM()) {
		t.Fatalf("pub file differs from signer's public key")
	}

	loaded, err := LoadCosignKey(keyPath, password)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.KeyID() != s.KeyID() {
		t.Fatal("loaded key differs")
	}
	payload := testPayload(t)
	sig, err := loaded.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pubPEM, payload, sig); err != nil {
		t.Fatal(err)
	}

	if _, err := LoadCosignKey(keyPath, []byte("wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := LoadCosignKey(filepath.Join(dir, "missing.key"), password); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := GenerateCosignKey(dir, password); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second GenerateCosignKey in the same dir: %v, want fs.ErrExist", err)
	}
	if _, err := ParseCosignKey(pubPEM, password); err == nil {
		t.Fatal("public key accepted as private key")
	}
	if _, err := ParseCosignKey([]byte("garbage"), password); err == nil {
		t.Fatal("garbage accepted as private key")
	}
	// Legacy label is read too.
	blk, _ := pem.Decode(keyPEM)
	legacy := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED COSIGN PRIVATE KEY", Bytes: blk.Bytes})
	if ls, err := ParseCosignKey(legacy, password); err != nil || ls.KeyID() != s.KeyID() {
		t.Fatalf("legacy label: %v", err)
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %o, want %o", path, got, want)
	}
}

func TestLoadOrCreateSimulationKey(t *testing.T) {
	t.Parallel() // scrypt-bound
	dataDir := t.TempDir()
	const n = 3
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := LoadOrCreateSimulationKey(dataDir)
			if err == nil {
				ids[i] = s.KeyID()
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent first calls disagree: %v", ids)
		}
	}
	keyPath := filepath.Join(dataDir, "keys", CosignKeyFile)
	pubPath := filepath.Join(dataDir, "keys", CosignPubFile)
	assertMode(t, keyPath, 0o600)
	assertMode(t, pubPath, 0o644)
	if got, err := KeyIDFromPEM(mustRead(t, pubPath)); err != nil || got != ids[0] {
		t.Fatalf("pub file key id %s %v", got, err)
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(filepath.Join(dataDir, "keys"))
	if len(entries) != 2 {
		t.Fatalf("keys dir holds %d entries, want 2", len(entries))
	}
	// A lost .pub file is restored; the key is kept (and opens with the empty password
	// through the ordinary loader LoadOrCreateSimulationKey uses).
	if err := os.Remove(pubPath); err != nil {
		t.Fatal(err)
	}
	s, err := LoadOrCreateSimulationKey(dataDir)
	if err != nil || s.KeyID() != ids[0] {
		t.Fatalf("reload: %v", err)
	}
	if !bytes.Equal(mustRead(t, pubPath), s.PublicKeyPEM()) {
		t.Fatal("pub not restored")
	}
	// A key that does not open with the empty password is an error, not replaced.
	other := t.TempDir()
	if _, err := GenerateCosignKey(filepath.Join(other, "keys"), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, filepath.Join(other, "keys", CosignKeyFile))
	if _, err := LoadOrCreateSimulationKey(other); err == nil {
		t.Fatal("password-protected simulation key accepted")
	}
	if !bytes.Equal(before, mustRead(t, filepath.Join(other, "keys", CosignKeyFile))) {
		t.Fatal("existing key was replaced")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyringAddFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	good, bad := filepath.Join(dir, "good.pub"), filepath.Join(dir, "bad.pub")
	if err := os.WriteFile(good, s.PublicKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	ring := &Keyring{}
	if err := ring.AddFiles(good); err != nil {
		t.Fatal(err)
	}
	if _, ok := ring.PublicKeyPEM(s.KeyID()); !ok {
		t.Fatal("the key of good.pub is not in the ring")
	}
	if err := ring.AddFiles(good, bad); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("AddFiles(bad) = %v, want ErrMalformed naming %s", err, bad)
	}
	if err := ring.AddFiles(filepath.Join(dir, "missing.pub")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("AddFiles(missing) = %v, want os.ErrNotExist", err)
	}
}
