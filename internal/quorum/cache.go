package quorum

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/decision-fabric/fabric/internal/signing"
)

// A vote's signature is checked where the negotiator records the vote, and its
// certificate again by the coordinator when it builds the consensus bundle and
// once more when it verifies the bundle before enacting. The results of those
// checks are pure functions of their inputs, so they are remembered here:
// a key PEM is parsed once, and a valid signature is verified once per
// process. Both caches are keyed by the whole input (PEM text; key, signature
// and payload bytes), so they can never answer for different input, and only
// successes are remembered, so a forged or tampered vote is checked, and
// refused, every time.

// Cache bounds: a negotiation has a handful of regions and each decision five
// or so votes, which a few thousand entries cover many times over.
const (
	keyCacheSize = 256
	sigCacheSize = 4096
)

// newCache returns a bounded, concurrency-safe LRU cache of size entries.
func newCache[V any](size int) *lru.Cache[string, V] {
	c, err := lru.New[string, V](size)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return c
}

// verifiedSigs holds the Ed25519 (key, signature, payload) triples that verified.
var verifiedSigs = newCache[struct{}](sigCacheSize)

// sigKey is the cache key of a triple: the key and signature have fixed sizes,
// so their concatenation with the payload is unambiguous.
func sigKey(pub ed25519.PublicKey, sig, payload []byte) string {
	return string(pub) + string(sig) + string(payload)
}

// VerifyEd25519 reports whether sig is pub's Ed25519 signature of payload,
// exactly as ed25519.Verify does. A valid signature is remembered (in a
// bounded cache shared with Verify), so the next check of the same vote does
// not repeat the curve arithmetic; an invalid one is checked every time.
func VerifyEd25519(pub ed25519.PublicKey, payload, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return ed25519.Verify(pub, payload, sig)
	}
	k := sigKey(pub, sig, payload)
	if _, ok := verifiedSigs.Get(k); ok {
		return true
	}
	if !ed25519.Verify(pub, payload, sig) {
		return false
	}
	verifiedSigs.Add(k, struct{}{})
	return true
}

// publicKey is a parsed "PUBLIC KEY" PEM: its signing key id and, when it is an
// Ed25519 key, the key itself.
type publicKey struct {
	id string
	ed ed25519.PublicKey // nil for other key types
}

var parsedKeys = newCache[publicKey](keyCacheSize)

// parseKey parses a "PUBLIC KEY" PEM as signing does (signing.KeyIDFromPEM; its
// errors are returned unchanged), remembering the keys it could parse.
func parseKey(pemBytes []byte) (publicKey, error) {
	if k, ok := parsedKeys.Get(string(pemBytes)); ok {
		return k, nil
	}
	id, err := signing.KeyIDFromPEM(pemBytes)
	if err != nil {
		return publicKey{}, err
	}
	k := publicKey{id: id, ed: ed25519Key(pemBytes, id)}
	parsedKeys.Add(string(pemBytes), k)
	return k, nil
}

// ed25519Key returns the Ed25519 key of a PEM that signing parsed to key id id,
// or nil when it is another kind of key. The key is used only if its own id is
// id, so it is the very key signing.Verify would use.
func ed25519Key(pemBytes []byte, id string) ed25519.PublicKey {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	if sum := sha256.Sum256(der); hex.EncodeToString(sum[:]) != id {
		return nil
	}
	return pub
}

// verifySignature is signing.Verify(pemBytes, payload, sigB64) for the key k
// parsed from pemBytes, answered from the cache of valid signatures when an
// Ed25519 signature was already verified (by this function or VerifyEd25519).
func verifySignature(k publicKey, pemBytes, payload []byte, sigB64 string) error {
	var raw []byte
	if k.ed != nil {
		// signing.Verify's decoding: surrounding space trimmed, standard base64.
		if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sigB64)); err == nil && len(b) == ed25519.SignatureSize {
			raw = b
			if _, ok := verifiedSigs.Get(sigKey(k.ed, raw, payload)); ok {
				return nil
			}
		}
	}
	if err := signing.Verify(pemBytes, payload, sigB64); err != nil {
		return err
	}
	if raw != nil {
		verifiedSigs.Add(sigKey(k.ed, raw, payload), struct{}{})
	}
	return nil
}
