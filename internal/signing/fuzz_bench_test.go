package signing

import (
	"crypto/sha256"
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary public key PEM, payload and signature to Verify and to a
// Keyring: they must never panic, must classify every failure as ErrBadSignature or
// ErrMalformed, and must never accept a signature that is not the signer's.
func FuzzVerify(f *testing.F) {
	payload := testPayload(f)
	// Fixed keys: every fuzz worker process rebuilds them and must get the same ones.
	ec := newFixedECDSA(f, 0x42)
	ed := newTestEd25519(f, 11)
	ecSig, _ := ec.Sign(payload)
	edSig, _ := ed.Sign(payload)
	f.Add(ec.PublicKeyPEM(), payload, ecSig)
	f.Add(ed.PublicKeyPEM(), payload, edSig)
	f.Add(ec.PublicKeyPEM(), payload, edSig)
	f.Add(ed.PublicKeyPEM(), []byte{}, "")
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), payload, "AAAA")
	f.Add([]byte{}, []byte("x"), "!!")

	f.Fuzz(func(t *testing.T, pemBytes, msg []byte, sig string) {
		err := Verify(pemBytes, msg, sig)
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unclassified error: %v", err)
		}
		if err == nil {
			// Only a real signature by the key verifies: the only keys the fuzzer can
			// hold a signature for are the seeds', over their exact payload (or a
			// signature it copied for a payload it reproduced).
			id, kerr := KeyIDFromPEM(pemBytes)
			if kerr != nil {
				t.Fatalf("Verify accepted but KeyIDFromPEM failed: %v", kerr)
			}
			if id != ec.KeyID() && id != ed.KeyID() {
				t.Fatalf("Verify accepted a signature for an unknown key %s", id)
			}
		}
		var k Keyring
		id, aerr := k.Add(pemBytes)
		if aerr != nil {
			if !errors.Is(aerr, ErrMalformed) {
				t.Fatalf("unclassified Add error: %v", aerr)
			}
			return
		}
		kerr := k.Verify(id, msg, sig)
		if (kerr == nil) != (err == nil) {
			t.Fatalf("Keyring.Verify (%v) and Verify (%v) disagree", kerr, err)
		}
	})
}

// benchPayload is a ~2 KiB canonical JSON document, about the size of a decision.
func benchPayload(b *testing.B) []byte {
	b.Helper()
	p := testPayload(b)
	for len(p) < 2048 {
		p = append(p, p...)
	}
	return p[:2048]
}

func benchSigners(b *testing.B) []struct {
	name string
	s    Signer
} {
	return []struct {
		name string
		s    Signer
	}{
		{"ecdsa-p256", newTestECDSA(b)},
		{"ed25519", newTestEd25519(b, 1)},
	}
}

// BenchmarkFloorSHA256 is the floor for Sign/Verify: hashing the same payload once.
func BenchmarkFloorSHA256(b *testing.B) {
	p := benchPayload(b)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		_ = sha256.Sum256(p)
	}
}

func BenchmarkSign(b *testing.B) {
	p := benchPayload(b)
	for _, c := range benchSigners(b) {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.s.Sign(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	p := benchPayload(b)
	for _, c := range benchSigners(b) {
		sig, err := c.s.Sign(p)
		if err != nil {
			b.Fatal(err)
		}
		pub := c.s.PublicKeyPEM()
		b.Run(c.name+"/pem", func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Verify(pub, p, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		var k Keyring
		id, err := k.Add(pub)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/keyring", func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := k.Verify(id, p, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
