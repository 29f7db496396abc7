package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// waPolicy makes every change high impact and asks for one sre's approval.
const waPolicy = `
version: 1
defaults:
  quorum: majority
  impact_rules:
    - {name: everything, when: "true", impact: high, reason: "every change is high impact here"}
  approval:
    sets:
      - rules:
          - {name: sre, approve: 1, deny: 1, filter: {roles: [approver], groups: [sre]}}
    expires_after: 10m
    reminder_before: 5m
`

const (
	waTestRPID   = "approvals.example"
	waTestOrigin = "https://approvals.example"
)

var b64url = base64.RawURLEncoding

// softKey is a software WebAuthn authenticator: one ES256 credential, attestation
// "none", user presence and verification asserted.
type softKey struct {
	key    *ecdsa.PrivateKey
	id     []byte
	user   []byte
	count  uint32
	origin string
}

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	id := make([]byte, 32)
	_, err = rand.Read(id)
	require.NoError(t, err)
	return &softKey{key: k, id: id, origin: waTestOrigin}
}

func (k *softKey) authData(flags byte, attested []byte) []byte {
	rp := sha256.Sum256([]byte(waTestRPID))
	out := append(append([]byte{}, rp[:]...), flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, attested...)
}

func (k *softKey) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin})
	return b
}

func (k *softKey) credential(t *testing.T, response map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"id": b64url.EncodeToString(k.id), "rawId": b64url.EncodeToString(k.id),
		"type": "public-key", "response": response, "clientExtensionResults": map[string]any{}})
	require.NoError(t, err)
	return string(b)
}

// create answers creation options as navigator.credentials.create would.
func (k *softKey) create(t *testing.T, options json.RawMessage) string {
	t.Helper()
	var o struct {
		Challenge string `json:"challenge"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	require.NoError(t, json.Unmarshal(options, &o))
	var err error
	k.user, err = b64url.DecodeString(o.User.ID)
	require.NoError(t, err)
	pub, err := k.key.PublicKey.Bytes()
	require.NoError(t, err)
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	require.NoError(t, err)
	attested := make([]byte, 16) // AAGUID
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(0x45, attested)})
	require.NoError(t, err)
	return k.credential(t, map[string]any{
		"clientDataJSON":    b64url.EncodeToString(k.clientData("webauthn.create", o.Challenge)),
		"attestationObject": b64url.EncodeToString(att),
	})
}

// get answers request options as navigator.credentials.get would.
func (k *softKey) get(t *testing.T, options json.RawMessage) string {
	t.Helper()
	var o struct {
		Challenge string `json:"challenge"`
	}
	require.NoError(t, json.Unmarshal(options, &o))
	k.count++
	ad := k.authData(0x05, nil)
	cd := k.clientData("webauthn.get", o.Challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	require.NoError(t, err)
	return k.credential(t, map[string]any{
		"clientDataJSON": b64url.EncodeToString(cd), "authenticatorData": b64url.EncodeToString(ad),
		"signature": b64url.EncodeToString(sig), "userHandle": b64url.EncodeToString(k.user),
	})
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestWebAuthnApprovalOverHTTP drives the WebAuthn factor through the real gateway's
// REST API on a running fabric: an approver enrols for TOTP, registers an
// authenticator with a current code (not without one), begins an approval bound to the
// proposal's manifest digest, and approves with the assertion alone; the vote is
// recorded as "webauthn" and the proposal is APPROVED. A gateway without hil.webauthn
// answers 412.
func TestWebAuthnApprovalOverHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(fabrictest.InstantRegions), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte(waPolicy), 0o600))
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite, Configure: func(c *config.Config) {
		c.RegionsFile, c.PolicyFile = regions, pol
		c.HIL.WebAuthn = config.WebAuthn{RPID: waTestRPID, RPOrigins: []string{waTestOrigin}}
	}})

	// A proposal waiting for approval.
	agent := f.TokenWithGroups(t, "agent-7", "t1", []string{"sre"}, auth.RoleProposer)
	r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", agent,
		`{"tenant_id":"t1","manifest":{"action":"scale","target":"svc-webauthn","regions":["eu-west"],"parameters":{"replicas":3}}}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var created struct {
		Proposal struct{ ID string } `json:"proposal"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &created))
	id := created.Proposal.ID
	var p struct {
		Proposal struct {
			Status         string `json:"status"`
			ManifestSHA256 string `json:"manifest_sha256"`
		} `json:"proposal"`
	}
	require.Eventually(t, func() bool {
		r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+id, agent, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.NoError(t, json.Unmarshal(r.Body, &p))
		return p.Proposal.Status == "PROPOSAL_STATUS_PENDING_APPROVAL"
	}, 20*time.Second, 25*time.Millisecond, "never pending approval (last %s)", p.Proposal.Status)

	// TOTP enrolment.
	ana := f.TokenWithGroups(t, "sre-ana", "t1", []string{"sre"}, auth.RoleApprover)
	r = f.Do(t, http.MethodPost, fabric.HIL, "/mfa/enroll", ana, `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var enrolled struct {
		OtpauthURI string `json:"otpauth_uri"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &enrolled))
	otpKey, err := otp.NewKeyFromURL(enrolled.OtpauthURI)
	require.NoError(t, err)
	code, err := totp.GenerateCode(otpKey.Secret(), time.Now())
	require.NoError(t, err)

	// The bearer token alone cannot register an authenticator; a proposer cannot at all.
	r = f.Do(t, http.MethodPost, fabric.HIL, "/mfa/webauthn/register/begin", ana, `{}`)
	require.Equal(t, http.StatusUnauthorized, r.Status, string(r.Body))
	r = f.Do(t, http.MethodPost, fabric.HIL, "/mfa/webauthn/register/begin", agent, jsonBody(t, map[string]string{"totp": code}))
	require.Equal(t, http.StatusForbidden, r.Status, "approver role only: %s", r.Body)

	key := newSoftKey(t)
	r = f.Do(t, http.MethodPost, fabric.HIL, "/mfa/webauthn/register/begin", ana, jsonBody(t, map[string]string{"totp": code}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var begun struct {
		Options json.RawMessage `json:"options"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &begun))
	r = f.Do(t, http.MethodPost, fabric.HIL, "/mfa/webauthn/register/finish", ana, jsonBody(t, map[string]string{"credential": key.create(t, begun.Options)}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.JSONEq(t, `{"registered":1}`, string(r.Body))

	// The assertion options, bound to the proposal's manifest digest.
	r = f.Do(t, http.MethodPost, fabric.HIL, "/approve/"+id+"/webauthn/begin", ana, `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var approval struct {
		Options        json.RawMessage `json:"options"`
		ManifestSHA256 string          `json:"manifest_sha256"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &approval))
	require.Equal(t, p.Proposal.ManifestSHA256, approval.ManifestSHA256)
	assertion := key.get(t, approval.Options)

	// Both factors at once: 400, and nothing is spent.
	r = f.Do(t, http.MethodPost, fabric.HIL, "/approve/"+id, ana, jsonBody(t, map[string]any{
		"decision": "approve", "mfa": map[string]string{"totp": code, "webauthn": assertion}}))
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))

	r = f.Do(t, http.MethodPost, fabric.HIL, "/approve/"+id, ana, jsonBody(t, map[string]any{
		"decision": "approve", "reason": "diff checked", "mfa": map[string]string{"webauthn": assertion}}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var voted struct {
		Approval struct {
			MFAVerified    bool   `json:"mfa_verified"`
			ProposalStatus string `json:"proposal_status"`
			Record         struct {
				MFAMethod string `json:"mfa_method"`
				Approver  string `json:"approver"`
			} `json:"record"`
		} `json:"approval"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &voted))
	require.True(t, voted.Approval.MFAVerified)
	require.Equal(t, "webauthn", voted.Approval.Record.MFAMethod)
	require.Equal(t, "sre-ana", voted.Approval.Record.Approver)
	require.Equal(t, "PROPOSAL_STATUS_APPROVED", voted.Approval.ProposalStatus)

	// A gateway without hil.webauthn: 412.
	bare := fabrictest.Start(t, fabrictest.Options{Targets: []string{fabric.HIL}, Store: fabrictest.SQLite})
	bo := bare.TokenWithGroups(t, "sre-bo", "t1", []string{"sre"}, auth.RoleApprover)
	r = bare.Do(t, http.MethodPost, fabric.HIL, "/mfa/webauthn/register/begin", bo, `{"totp":"123456"}`)
	require.Equal(t, http.StatusPreconditionFailed, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "NOT_CONFIGURED")
}
