// Decoding a stored manifest, with a cache of the manifests decoded before.

package manifest

import (
	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
)

// decodeOptions is how a stored manifest is read: plain protojson, strict (a member
// this build does not know is an error, not dropped: the stored bytes are what the
// digest covers).
var decodeOptions = protojson.UnmarshalOptions{}

// decodeCacheSize bounds the cache by entries, and maxCachedBytes the manifests it
// keeps: a typical one is a few KiB, but parameters may reach MaxParamsBytes, and
// 1024 of those (key and message) would pin hundreds of MiB.
const (
	decodeCacheSize = 1024
	maxCachedBytes  = 16 << 10
)

// decoded remembers the manifests Decode decoded, keyed by their stored JSON: a
// proposal's or a negotiation's manifest is read by every step and every status read,
// and decoding is a pure function of those bytes, so the cache cannot answer for
// other content.
var decoded = func() *lru.Cache[string, *typesv1.Manifest] {
	c, err := lru.New[string, *typesv1.Manifest](decodeCacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return c
}()

// Decode reads a stored manifest (its canonical JSON, as Canonical gives it). The
// caller owns the result: a fresh message, or a copy of the one decoded from the same
// bytes before (a manifest over maxCachedBytes is not kept). Errors (protojson's, unwrapped: callers say whose manifest) are not
// cached.
func Decode(raw []byte) (*typesv1.Manifest, error) {
	if m, ok := decoded.Get(string(raw)); ok {
		return proto.CloneOf(m), nil
	}
	m := &typesv1.Manifest{}
	if err := decodeOptions.Unmarshal(raw, m); err != nil {
		return nil, err
	}
	if len(raw) <= maxCachedBytes {
		decoded.Add(string(raw), proto.CloneOf(m))
	}
	return m, nil
}
