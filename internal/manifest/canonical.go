// The canonical form: what is signed, stored, hashed and negotiated.

package manifest

import (
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

// Canonical is m's canonical form, RFC 8785 JSON of its protojson encoding (proto
// field names, no unpopulated fields; canonical.Proto), and the lower-case hex SHA-256
// of those bytes: the manifest_sha256 that identifies it everywhere. A cosign
// signature of the manifest is over exactly raw.
func Canonical(m *typesv1.Manifest) (raw []byte, sha256 string, err error) {
	raw, err = canonical.Proto(m)
	if err != nil {
		return nil, "", err
	}
	return raw, canonical.SHA256Hex(raw), nil
}
