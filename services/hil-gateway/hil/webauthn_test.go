package hil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/store"
)

const (
	waRPID   = "approvals.example"
	waOrigin = "https://approvals.example"
	// Two manifest digests (lowercase hex SHA-256).
	waDigestA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	waDigestB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// Authenticator data flags.
const (
	waFlagUP = 0x01
	waFlagUV = 0x04
	waFlagAT = 0x40
)

var waB64 = base64.RawURLEncoding

// waClock is a settable clock.
type waClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *waClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *waClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type waFixture struct {
	st    store.Store
	wa    *WebAuthn
	clock *waClock
}

func waSetup(t testing.TB) *waFixture {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	clock := &waClock{t: time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)}
	wa, err := NewWebAuthn(st.WebAuthn(), WebAuthnConfig{
		RPID: waRPID, RPDisplayName: "Decision Fabric", RPOrigins: []string{waOrigin}, Now: clock.Now,
	})
	require.NoError(t, err)
	return &waFixture{st: st, wa: wa, clock: clock}
}

// softAuthenticator is a software WebAuthn authenticator: one ES256 (P-256) credential,
// attestation "none", user presence and verification always asserted.
type softAuthenticator struct {
	key    *ecdsa.PrivateKey
	credID []byte
	aaguid []byte
	count  uint32
	rpID   string
	origin string
	userID []byte // the user handle from the creation options
}

func newSoftAuthenticator(t testing.TB) *softAuthenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	id := make([]byte, 32)
	_, err = rand.Read(id)
	require.NoError(t, err)
	aaguid := []byte("soft-authn-aagid")
	return &softAuthenticator{key: key, credID: id, aaguid: aaguid, rpID: waRPID, origin: waOrigin}
}

// clone is a copy of the authenticator: same key, same counter.
func (a *softAuthenticator) clone() *softAuthenticator {
	c := *a
	return &c
}

// coseKey is the credential public key as a COSE_Key (EC2, ES256, P-256).
func (a *softAuthenticator) coseKey(t testing.TB) []byte {
	t.Helper()
	pub, err := a.key.PublicKey.Bytes() // 0x04 || X || Y
	require.NoError(t, err)
	b, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	require.NoError(t, err)
	return b
}

func (a *softAuthenticator) authData(flags byte, attested []byte) []byte {
	rpHash := sha256.Sum256([]byte(a.rpID))
	out := append([]byte{}, rpHash[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, a.count)
	return append(out, attested...)
}

func (a *softAuthenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": false})
	return b
}

// register answers PublicKeyCredentialCreationOptions (JSON) with a
// PublicKeyCredential (JSON), as navigator.credentials.create would.
func (a *softAuthenticator) register(t testing.TB, options []byte) []byte {
	t.Helper()
	var opts struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	require.NoError(t, json.Unmarshal(options, &opts))
	if opts.RP.ID != "" { // request options (a misuse under test) have none
		require.Equal(t, a.rpID, opts.RP.ID)
		uid, err := waB64.DecodeString(opts.User.ID)
		require.NoError(t, err)
		a.userID = uid
	}

	attested := append([]byte{}, a.aaguid...)
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.credID)))
	attested = append(attested, a.credID...)
	attested = append(attested, a.coseKey(t)...)
	attObj, err := webauthncbor.Marshal(map[string]any{
		"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(waFlagUP|waFlagUV|waFlagAT, attested),
	})
	require.NoError(t, err)
	return a.credential(t, map[string]any{
		"clientDataJSON":    waB64.EncodeToString(a.clientData("webauthn.create", opts.Challenge)),
		"attestationObject": waB64.EncodeToString(attObj),
	})
}

// assert answers PublicKeyCredentialRequestOptions (JSON) with a PublicKeyCredential
// (JSON), as navigator.credentials.get would: the counter is incremented and
// authenticatorData || SHA-256(clientDataJSON) signed (ECDSA, SHA-256, ASN.1).
func (a *softAuthenticator) assert(t testing.TB, options []byte) []byte {
	t.Helper()
	var opts struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
	}
	require.NoError(t, json.Unmarshal(options, &opts))
	require.Equal(t, a.rpID, opts.RPID)
	a.count++
	ad := a.authData(waFlagUP|waFlagUV, nil)
	cd := a.clientData("webauthn.get", opts.Challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	require.NoError(t, err)
	return a.credential(t, map[string]any{
		"clientDataJSON":    waB64.EncodeToString(cd),
		"authenticatorData": waB64.EncodeToString(ad),
		"signature":         waB64.EncodeToString(sig),
		"userHandle":        waB64.EncodeToString(a.userID),
	})
}

func (a *softAuthenticator) credential(t testing.TB, response map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": waB64.EncodeToString(a.credID), "rawId": waB64.EncodeToString(a.credID), "type": "public-key",
		"response": response, "clientExtensionResults": map[string]any{},
	})
	require.NoError(t, err)
	return b
}

func (f *waFixture) register(t testing.TB, tenant, subject string, a *softAuthenticator) {
	t.Helper()
	opts, err := f.wa.BeginRegistration(t.Context(), tenant, subject)
	require.NoError(t, err)
	require.NoError(t, f.wa.FinishRegistration(t.Context(), tenant, subject, a.register(t, opts)))
}

func (f *waFixture) begin(t testing.TB, tenant, subject, digest string) []byte {
	t.Helper()
	opts, err := f.wa.BeginApproval(t.Context(), tenant, subject, digest)
	require.NoError(t, err)
	return opts
}

func TestWebAuthnRegisterThenApprove(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)

	opts, err := f.wa.BeginRegistration(t.Context(), "t1", "alice")
	require.NoError(t, err)
	var creation map[string]any
	require.NoError(t, json.Unmarshal(opts, &creation))
	require.Equal(t, "none", creation["attestation"])
	require.Equal(t, "required", creation["authenticatorSelection"].(map[string]any)["userVerification"])
	require.NoError(t, f.wa.FinishRegistration(t.Context(), "t1", "alice", a.register(t, opts)))

	creds, err := f.st.WebAuthn().ListWebAuthnCredentials(t.Context(), "t1", "alice")
	require.NoError(t, err)
	require.Len(t, creds, 1)
	require.Equal(t, a.credID, creds[0].ID)
	require.Equal(t, a.aaguid, creds[0].AAGUID)
	require.Equal(t, "none", creds[0].AttestationFormat)
	require.Zero(t, creds[0].SignCount)

	// A second registration excludes the registered credential; registering the same
	// credential again is refused.
	opts, err = f.wa.BeginRegistration(t.Context(), "t1", "alice")
	require.NoError(t, err)
	require.Contains(t, string(opts), waB64.EncodeToString(a.credID), "excludeCredentials")
	err = f.wa.FinishRegistration(t.Context(), "t1", "alice", a.register(t, opts))
	require.ErrorIs(t, err, ErrAssertion)

	// Approve: the challenge is bound to the digest, the assertion verifies, the counter advances.
	for i := range 3 {
		opts := f.begin(t, "t1", "alice", waDigestA)
		var req map[string]any
		require.NoError(t, json.Unmarshal(opts, &req))
		require.Equal(t, "required", req["userVerification"])
		require.Equal(t, waRPID, req["rpId"])
		require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, opts)), "approval %d", i)
	}
	creds, err = f.st.WebAuthn().ListWebAuthnCredentials(t.Context(), "t1", "alice")
	require.NoError(t, err)
	require.Equal(t, uint32(3), creds[0].SignCount)
	require.Equal(t, f.clock.Now(), creds[0].LastUsedAt)
}

func TestWebAuthnChallengeBoundToDigest(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)

	// The challenge is SHA-256 of the domain, tenant, digest and a nonce: 32 bytes,
	// fresh each time for one digest.
	optsA := f.begin(t, "t1", "alice", waDigestA)
	optsA2 := f.begin(t, "t1", "alice", waDigestA)
	chA, chA2 := waChallenge(t, optsA), waChallenge(t, optsA2)
	require.Len(t, chA, sha256.Size)
	require.NotEqual(t, chA, chA2)

	// An assertion over digest A's challenge cannot approve digest B, and the attempt
	// uses the session up.
	resp := a.assert(t, optsA)
	err := f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestB, resp)
	require.ErrorIs(t, err, ErrChallenge)
	require.Equal(t, http.StatusUnauthorized, WebAuthnHTTPStatus(err))
	err = f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, resp)
	require.ErrorIs(t, err, ErrChallenge, "used up by the attempt for B")

	// The other session for A still works.
	require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, optsA2)))

	// The bound challenge is recomputed from the stored nonce: a session row whose
	// digest was changed to B (a tampered store) still cannot approve B.
	optsA3 := f.begin(t, "t1", "alice", waDigestA)
	resp = a.assert(t, optsA3)
	sess, err := f.st.WebAuthn().TakeWebAuthnSession(t.Context(), "t1", "alice", waB64.EncodeToString(waChallenge(t, optsA3)))
	require.NoError(t, err)
	sess.ManifestSHA256 = waDigestB
	require.NoError(t, f.st.WebAuthn().PutWebAuthnSession(t.Context(), sess))
	err = f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestB, resp)
	require.ErrorIs(t, err, ErrChallenge)
	require.ErrorContains(t, err, "not bound to this manifest")

	_, err = f.wa.BeginApproval(t.Context(), "t1", "alice", "AAAA")
	require.Error(t, err, "a digest must be lowercase hex SHA-256")
	_, err = f.wa.BeginApproval(t.Context(), "t1", "alice", waDigestA[:63]+"\n")
	require.Error(t, err)
}

func waChallenge(t testing.TB, options []byte) []byte {
	t.Helper()
	var o struct {
		Challenge string `json:"challenge"`
	}
	require.NoError(t, json.Unmarshal(options, &o))
	b, err := waB64.DecodeString(o.Challenge)
	require.NoError(t, err)
	return b
}

func TestWebAuthnReplayRefused(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)
	opts := f.begin(t, "t1", "alice", waDigestA)
	resp := a.assert(t, opts)
	require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, resp))
	require.ErrorIs(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, resp), ErrChallenge)

	// Concurrent finishes of one assertion: exactly one succeeds.
	opts = f.begin(t, "t1", "alice", waDigestA)
	resp = a.assert(t, opts)
	const n = 6
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errs <- f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, resp) })
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, ErrChallenge)
	}
	require.Equal(t, 1, wins)

	// A registration response cannot finish an approval (another kind of session) and
	// vice versa.
	regOpts, err := f.wa.BeginRegistration(t.Context(), "t1", "alice")
	require.NoError(t, err)
	b := newSoftAuthenticator(t)
	reg := b.register(t, regOpts)
	require.ErrorIs(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, reg), ErrAssertion)
	opts = f.begin(t, "t1", "alice", waDigestA)
	// An assertion's challenge presented as a registration.
	regLike := b.register(t, opts)
	require.ErrorIs(t, f.wa.FinishRegistration(t.Context(), "t1", "alice", regLike), ErrChallenge)
}

func TestWebAuthnExpired(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)

	opts := f.begin(t, "t1", "alice", waDigestA)
	f.clock.Add(WebAuthnApprovalTTL)
	require.ErrorIs(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, opts)), ErrChallenge)

	opts = f.begin(t, "t1", "alice", waDigestA)
	f.clock.Add(WebAuthnApprovalTTL - time.Second)
	require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, opts)), "just in time")

	regOpts, err := f.wa.BeginRegistration(t.Context(), "t1", "alice")
	require.NoError(t, err)
	f.clock.Add(WebAuthnRegistrationTTL)
	err = f.wa.FinishRegistration(t.Context(), "t1", "alice", newSoftAuthenticator(t).register(t, regOpts))
	require.ErrorIs(t, err, ErrChallenge)
}

func TestWebAuthnWrongOriginAndRPID(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)

	a.origin = "https://evil.example"
	err := f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, f.begin(t, "t1", "alice", waDigestA)))
	require.ErrorIs(t, err, ErrAssertion)
	require.ErrorContains(t, err, "origin")
	require.Equal(t, http.StatusUnauthorized, WebAuthnHTTPStatus(err))
	require.Equal(t, codes.Unauthenticated, status.Code(WebAuthnGRPCError(err)))

	a.origin = waOrigin
	opts := f.begin(t, "t1", "alice", waDigestA)
	a.rpID = "evil.example"
	var o map[string]any
	require.NoError(t, json.Unmarshal(opts, &o))
	o["rpId"] = "evil.example"
	opts, _ = json.Marshal(o)
	require.ErrorIs(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, opts)), ErrAssertion, "RP ID hash")

	// A registration at the wrong origin is refused too.
	b := newSoftAuthenticator(t)
	b.origin = "https://evil.example"
	regOpts, err := f.wa.BeginRegistration(t.Context(), "t1", "bob")
	require.NoError(t, err)
	require.ErrorIs(t, f.wa.FinishRegistration(t.Context(), "t1", "bob", b.register(t, regOpts)), ErrAssertion)
}

func TestWebAuthnBadSignatureAndFlags(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)

	// Another key under the registered credential ID.
	forger := newSoftAuthenticator(t)
	forger.credID, forger.userID = a.credID, a.userID
	err := f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, forger.assert(t, f.begin(t, "t1", "alice", waDigestA)))
	require.ErrorIs(t, err, ErrAssertion)
	require.ErrorContains(t, err, "signature")

	// Without user verification.
	opts := f.begin(t, "t1", "alice", waDigestA)
	resp := a.assert(t, opts)
	var cred map[string]any
	require.NoError(t, json.Unmarshal(resp, &cred))
	a.count++
	ad := a.authData(waFlagUP, nil)
	cd, err := waB64.DecodeString(cred["response"].(map[string]any)["clientDataJSON"].(string))
	require.NoError(t, err)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	require.NoError(t, err)
	cred["response"].(map[string]any)["authenticatorData"] = waB64.EncodeToString(ad)
	cred["response"].(map[string]any)["signature"] = waB64.EncodeToString(sig)
	resp, _ = json.Marshal(cred)
	err = f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, resp)
	require.ErrorIs(t, err, ErrAssertion)
	require.ErrorContains(t, err, "verification", "UV required")
}

func TestWebAuthnClonedAuthenticatorRefused(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)
	require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, f.begin(t, "t1", "alice", waDigestA))))

	c := a.clone()
	require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, a.assert(t, f.begin(t, "t1", "alice", waDigestA))))
	// The clone signs with the counter the original already used.
	err := f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, c.assert(t, f.begin(t, "t1", "alice", waDigestA)))
	require.ErrorIs(t, err, ErrAssertion)
	require.ErrorContains(t, err, "counter")
	// A counter going backwards is refused too.
	c.count = 0
	err = f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, c.assert(t, f.begin(t, "t1", "alice", waDigestA)))
	require.ErrorIs(t, err, ErrAssertion)

	creds, err := f.st.WebAuthn().ListWebAuthnCredentials(t.Context(), "t1", "alice")
	require.NoError(t, err)
	require.Equal(t, uint32(2), creds[0].SignCount, "refused assertions do not move the counter")
}

func TestWebAuthnTenantAndSubjectIsolation(t *testing.T) {
	f := waSetup(t)
	a := newSoftAuthenticator(t)
	f.register(t, "t1", "alice", a)

	for _, k := range [][2]string{{"t2", "alice"}, {"t1", "bob"}} {
		_, err := f.wa.BeginApproval(t.Context(), k[0], k[1], waDigestA)
		require.ErrorIs(t, err, ErrNoCredential, "%v", k)
		require.Equal(t, http.StatusForbidden, WebAuthnHTTPStatus(err))
		require.Equal(t, codes.PermissionDenied, status.Code(WebAuthnGRPCError(err)))
	}
	// Alice's assertion for her session in t1 cannot be finished as another tenant or subject.
	opts := f.begin(t, "t1", "alice", waDigestA)
	resp := a.assert(t, opts)
	require.ErrorIs(t, f.wa.FinishApproval(t.Context(), "t2", "alice", waDigestA, resp), ErrChallenge)
	require.ErrorIs(t, f.wa.FinishApproval(t.Context(), "t1", "bob", waDigestA, resp), ErrChallenge)
	require.NoError(t, f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, resp), "still alice's")

	// Bob's session answered with alice's credential: bob has no credential.
	regOpts, err := f.wa.BeginRegistration(t.Context(), "t1", "bob")
	require.NoError(t, err)
	require.NotNil(t, regOpts)
	bob := newSoftAuthenticator(t)
	f.register(t, "t1", "bob", bob)
	opts = f.begin(t, "t1", "bob", waDigestA)
	stolen := a.clone()
	stolen.userID = bob.userID
	err = f.wa.FinishApproval(t.Context(), "t1", "bob", waDigestA, stolen.assert(t, opts))
	require.ErrorIs(t, err, ErrAssertion, "alice's credential is not bob's")
}

func TestWebAuthnConfigAndErrors(t *testing.T) {
	st := waSetup(t).st
	_, err := NewWebAuthn(nil, WebAuthnConfig{RPID: waRPID, RPDisplayName: "x", RPOrigins: []string{waOrigin}})
	require.Error(t, err)
	_, err = NewWebAuthn(st.WebAuthn(), WebAuthnConfig{RPID: waRPID, RPDisplayName: "x"})
	require.Error(t, err)
	_, err = NewWebAuthn(st.WebAuthn(), WebAuthnConfig{RPID: "not a domain!", RPDisplayName: "x", RPOrigins: []string{waOrigin}})
	require.Error(t, err)
	require.Equal(t, http.StatusInternalServerError, WebAuthnHTTPStatus(errors.New("x")))
	require.Equal(t, codes.Internal, status.Code(WebAuthnGRPCError(errors.New("x"))))

	f := waSetup(t)
	for _, bad := range [][]byte{nil, []byte("{}"), []byte("not json"), []byte(`{"type":"public-key"}`)} {
		err := f.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, bad)
		require.True(t, errors.Is(err, ErrAssertion) || errors.Is(err, ErrChallenge), "%q: %v", bad, err)
		err = f.wa.FinishRegistration(t.Context(), "t1", "alice", bad)
		require.True(t, errors.Is(err, ErrAssertion) || errors.Is(err, ErrChallenge), "%q: %v", bad, err)
	}
	_, err = f.wa.BeginRegistration(t.Context(), "", "alice")
	require.Error(t, err)
	_, err = f.wa.BeginApproval(t.Context(), "t1", "", waDigestA)
	require.Error(t, err)
}

// FuzzFinishApproval: whatever bytes answer a live approval session, FinishApproval
// neither panics nor succeeds.
func FuzzFinishApproval(f *testing.F) {
	fx := waSetup(f)
	a := newSoftAuthenticator(f)
	fx.register(f, "t1", "alice", a)
	// Seeds: a valid assertion for an earlier (used) session, a registration, garbage.
	opts := fx.begin(f, "t1", "alice", waDigestA)
	valid := a.assert(f, opts)
	require.NoError(f, fx.wa.FinishApproval(f.Context(), "t1", "alice", waDigestA, valid))
	f.Add(valid)
	regOpts, err := fx.wa.BeginRegistration(f.Context(), "t1", "alice")
	require.NoError(f, err)
	f.Add(newSoftAuthenticator(f).register(f, regOpts))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Add([]byte{})
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, response []byte) {
		fx.begin(t, "t1", "alice", waDigestA)
		err := fx.wa.FinishApproval(t.Context(), "t1", "alice", waDigestA, response)
		if err == nil {
			t.Fatalf("FinishApproval accepted %q", response)
		}
	})
}
