// Package canonical produces RFC 8785 (JSON Canonicalization Scheme) bytes and their
// SHA256, the one form the fabric hashes and signs. Two values that are equal as JSON
// always give the same bytes, whatever key order or number formatting they arrived in.
package canonical

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// JSON canonicalises JSON text.
func JSON(raw []byte) ([]byte, error) {
	if out, ok := fast(raw); ok {
		return out, nil
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonical: %w", err)
	}
	return out, nil
}

// Marshal encodes v as JSON and canonicalises it.
func Marshal(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical: marshal: %w", err)
	}
	return JSON(raw)
}

// protoJSON is the one protojson form used for hashing: proto field names, no defaults,
// so adding an unset field to a message never changes existing hashes.
var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

// Proto encodes a message with proto field names and canonicalises it.
func Proto(m proto.Message) ([]byte, error) {
	raw, err := protoJSON.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("canonical: protojson: %w", err)
	}
	return JSON(raw)
}

// IsSHA256Hex reports whether s is a lower-case hex SHA256 (64 characters), the form
// SHA256Hex produces.
func IsSHA256Hex(s string) bool { return IsLowerHex(s, 2*sha256.Size) }

// IsLowerHex reports whether s is exactly n lower-case hex digits.
func IsLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// SHA256Hex is the lower-case hex SHA256 of b.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
