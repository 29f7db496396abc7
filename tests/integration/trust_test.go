package integration

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// sign returns the JSON of a signature over m's canonical form by s.
func sign(t *testing.T, s signing.Signer, m proto.Message) string {
	t.Helper()
	payload, err := canonical.Proto(m)
	require.NoError(t, err)
	sig, err := s.Sign(payload)
	require.NoError(t, err)
	out, err := json.Marshal(map[string]string{"signature": sig, "key_id": s.KeyID(), "public_key": string(s.PublicKeyPEM())})
	require.NoError(t, err)
	return string(out)
}

func manifestJSON(t *testing.T, m *typesv1.Manifest) string {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

// TestSignaturesAndConsent covers P2 (manifest signatures from trusted keys only) and
// P1 (personal data only with a signed consent, limited to its scopes).
func TestSignaturesAndConsent(t *testing.T) {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	tok := f.Token(t, "t1", auth.RoleProposer)
	fabricKey, err := signing.LoadOrCreateSimulationKey(f.Cfg.DataDir)
	require.NoError(t, err)
	stranger, err := signing.GenerateEd25519()
	require.NoError(t, err)
	submit := func(manifest, signature string) fabrictest.Response {
		body := `{"tenant_id":"t1","manifest":` + manifest
		if signature != "" {
			body += `,"signature":` + signature
		}
		return f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, body+`}`)
	}

	m := &typesv1.Manifest{Action: "scale", Target: "serviceS", TenantId: "t1"}
	r := submit(manifestJSON(t, m), sign(t, fabricKey, m))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))

	tampered := proto.Clone(m).(*typesv1.Manifest)
	tampered.Target = "serviceT"
	r = submit(manifestJSON(t, tampered), sign(t, fabricKey, m))
	require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "does not verify")

	r = submit(manifestJSON(t, m), sign(t, stranger, m))
	require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "untrusted key")

	// Personal data: refused without consent, refused with an unsigned consent, accepted
	// with a signed consent covering it, and stored as consented.
	withPII := &typesv1.Manifest{Action: "scale", Target: "serviceS", Parameters: nil}
	require.NoError(t, protojson.Unmarshal([]byte(`{"action":"scale","target":"serviceS","parameters":{"owner":"ops.lead@example.com","replicas":3}}`), withPII))
	r = submit(manifestJSON(t, withPII), "")
	require.Equal(t, http.StatusForbidden, r.Status)

	consent := &typesv1.Consent{GrantedBy: "policy-42", Scopes: []string{"email"}}
	withPII.Consent = consent
	r = submit(manifestJSON(t, withPII), "")
	require.Equal(t, http.StatusForbidden, r.Status, "an unsigned consent is not consent")

	payload, err := canonical.Proto(consent)
	require.NoError(t, err)
	consent.Signature, err = fabricKey.Sign(payload)
	require.NoError(t, err)
	r = submit(manifestJSON(t, withPII), "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "ops.lead@example.com", "the consented e-mail is kept")

	phone := proto.Clone(withPII).(*typesv1.Manifest)
	require.NoError(t, phone.Parameters.Fields["owner"].UnmarshalJSON([]byte(`"+44 20 7946 0958"`)))
	r = submit(manifestJSON(t, phone), "")
	require.Equal(t, http.StatusForbidden, r.Status, "a phone number is outside the e-mail consent")
}
