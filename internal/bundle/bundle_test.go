package bundle_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
)

var (
	seed    = bytes.Repeat([]byte{9}, regionkeys.SeedSize)
	regions = []string{"eu-west", "us-east", "ap-south"}
	now     = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

// cosignKey is the package's cosign-format (ECDSA P-256) signing key, made in memory:
// decrypting a key file costs a scrypt run, far too slow under the fuzzer.
var cosignKey = sync.OnceValues(func() (signing.Signer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return signing.NewECDSASigner(priv)
})

func signer(t testing.TB) signing.Signer {
	t.Helper()
	s, err := cosignKey()
	require.NoError(t, err)
	return s
}

func registry(t testing.TB) *regionkeys.Registry {
	t.Helper()
	r, err := regionkeys.FromSeed(seed, regions)
	require.NoError(t, err)
	return r
}

func trustedRing(t testing.TB) *signing.Keyring {
	t.Helper()
	ring := &signing.Keyring{}
	_, err := ring.Add(signer(t).PublicKeyPEM())
	require.NoError(t, err)
	return ring
}

func trust(t testing.TB) bundle.Trust {
	return bundle.Trust{Keys: trustedRing(t), Regions: registry(t).Trusted(), RequireManifestSignature: true}
}

func testManifest(t testing.TB, replicas float64) *typesv1.Manifest {
	t.Helper()
	p, err := structpb.NewStruct(map[string]any{"replicas": replicas})
	require.NoError(t, err)
	return &typesv1.Manifest{Action: "scale", Target: "serviceX", Regions: regions, Parameters: p, TenantId: "t1"}
}

func signManifest(t testing.TB, m *typesv1.Manifest) *typesv1.ManifestSignature {
	t.Helper()
	payload, err := canonical.Proto(m)
	require.NoError(t, err)
	sig, err := signer(t).Sign(payload)
	require.NoError(t, err)
	return &typesv1.ManifestSignature{Signature: sig, KeyId: signer(t).KeyID(), PublicKey: string(signer(t).PublicKeyPEM())}
}

// vote signs a region's verdict with its seed-derived key (or with key when given).
func vote(t testing.TB, digest string, region, verdict string, key ed25519.PrivateKey) *negotiatorv1.QuorumCertificateVote {
	t.Helper()
	own, err := regionkeys.Derive(seed, region)
	require.NoError(t, err)
	if key == nil {
		key = own
	}
	payload, err := quorum.VotePayload(digest, 1, region, verdict)
	require.NoError(t, err)
	return &negotiatorv1.QuorumCertificateVote{Region: region, Round: 1, Verdict: verdict,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, payload)), KeyId: regionkeys.KeyID(own.Public().(ed25519.PublicKey))}
}

// certificate is an AGREED majority certificate of digest: two of three regions accept.
func certificate(t testing.TB, digest string) *negotiatorv1.QuorumCertificate {
	t.Helper()
	c := &negotiatorv1.QuorumCertificate{ProposalDigest: digest, NegotiationId: "n1", Round: 1, Rule: quorum.RuleMajority, Outcome: quorum.OutcomeAgreed}
	for _, r := range regions {
		k, err := regionkeys.Derive(seed, r)
		require.NoError(t, err)
		pub := k.Public().(ed25519.PublicKey)
		c.RegionKeys = append(c.RegionKeys, &negotiatorv1.QuorumCertificateRegionKey{Region: r, KeyId: regionkeys.KeyID(pub),
			PublicKeyPem: regionkeys.PublicKeyPEM(pub), Weight: 1})
	}
	c.Votes = []*negotiatorv1.QuorumCertificateVote{
		vote(t, digest, "eu-west", quorum.VerdictAccept, nil),
		vote(t, digest, "us-east", quorum.VerdictAccept, nil),
		vote(t, digest, "ap-south", quorum.VerdictReject, nil),
	}
	return c
}

// fixture is a signed decision: the submitted manifest, its signature, the agreed
// (countered) manifest and the input of its bundle.
type fixture struct {
	manifest, agreed *typesv1.Manifest
	sig              *typesv1.ManifestSignature
	digest           string
	in               bundle.Input
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	m := testManifest(t, 12)
	payload, err := canonical.Proto(m)
	require.NoError(t, err)
	f := fixture{manifest: m, agreed: testManifest(t, 8), sig: signManifest(t, m), digest: canonical.SHA256Hex(payload)}
	f.in = bundle.Input{TenantID: "t1", ProposalID: "p1", Manifest: m, ManifestSignature: f.sig,
		Certificate: certificate(t, f.digest), AgreedManifest: f.agreed, CreatedAt: now}
	return f
}

// signedBundle builds and signs the bundle of in.
func signedBundle(t testing.TB, in bundle.Input) *typesv1.ConsensusBundle {
	t.Helper()
	c, err := bundle.Build(in)
	require.NoError(t, err)
	b, err := bundle.Sign(c, signer(t))
	require.NoError(t, err)
	return b
}

// requirePart asserts err is a verification failure of part.
func requirePart(t testing.TB, err error, part string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, bundle.ErrInvalid)
	var be *bundle.Error
	require.True(t, errors.As(err, &be), "%v is not a *bundle.Error", err)
	require.True(t, strings.HasPrefix(be.Part, part), "failure names %q, want %q: %v", be.Part, part, err)
}

// homesPartError is requirePart returning the *bundle.Error, for its Detail.
func homesPartError(t testing.TB, err error, part string) *bundle.Error {
	t.Helper()
	requirePart(t, err, part)
	var be *bundle.Error
	errors.As(err, &be)
	return be
}

func TestBuildSignVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := signedBundle(t, f.in)
	c, err := bundle.Verify(b, trust(t), bundle.Expect{TenantID: "t1", ProposalID: "p1", ManifestSHA256: f.digest, Enact: f.agreed})
	require.NoError(t, err)
	require.Equal(t, bundle.ConsensusType, c.Type)
	require.Equal(t, f.digest, c.ManifestSHA256)
	require.Equal(t, quorum.OutcomeAgreed, c.QuorumCertificate.Outcome)

	// The signature is a cosign signature over exactly the canonical payload.
	payload, err := bundle.Payload(b)
	require.NoError(t, err)
	require.Equal(t, canonical.SHA256Hex(payload), b.GetSha256())
	require.NoError(t, signing.Verify(signer(t).PublicKeyPEM(), payload, b.GetSignature().GetSignature()))

	// Survives JSON (the decision record, the API) unchanged.
	raw, err := protojson.Marshal(b)
	require.NoError(t, err)
	again := &typesv1.ConsensusBundle{}
	require.NoError(t, protojson.Unmarshal(raw, again))
	_, err = bundle.Verify(again, trust(t), bundle.Expect{Enact: f.agreed})
	require.NoError(t, err)

	// Without counter-offers the agreed manifest is the submitted one.
	in := f.in
	in.AgreedManifest = nil
	_, err = bundle.Verify(signedBundle(t, in), trust(t), bundle.Expect{Enact: f.manifest})
	require.NoError(t, err)
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := signedBundle(t, f.in)
	expect := bundle.Expect{TenantID: "t1", ProposalID: "p1", ManifestSHA256: f.digest, Enact: f.agreed}
	stranger, err := signing.GenerateEd25519()
	require.NoError(t, err)
	_, forger, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)

	// resign re-signs an edited bundle with the trusted key: only what the edit broke fails.
	resign := func(t *testing.T, edit func(c *bundle.Consensus)) *typesv1.ConsensusBundle {
		c, err := bundle.Build(f.in)
		require.NoError(t, err)
		edit(c)
		b, err := bundle.Sign(c, signer(t))
		require.NoError(t, err)
		return b
	}
	for name, tc := range map[string]struct {
		b       func(t *testing.T) *typesv1.ConsensusBundle
		trust   func(tr bundle.Trust) bundle.Trust
		expect  bundle.Expect
		part    string
		missing bool
		detail  string
	}{
		"missing bundle": {b: func(*testing.T) *typesv1.ConsensusBundle { return nil }, part: bundle.PartBundle, missing: true},
		"missing bundle signature": {b: func(*testing.T) *typesv1.ConsensusBundle {
			b := proto.Clone(good).(*typesv1.ConsensusBundle)
			b.Signature = nil
			return b
		}, part: bundle.PartBundleSignature, missing: true},
		"bundle signed by an untrusted key": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			c, err := bundle.Build(f.in)
			require.NoError(t, err)
			b, err := bundle.Sign(c, stranger)
			require.NoError(t, err)
			return b
		}, part: bundle.PartBundleSignature, detail: "not a trusted key"},
		"bundle changed after signing": {b: func(*testing.T) *typesv1.ConsensusBundle {
			b := proto.Clone(good).(*typesv1.ConsensusBundle)
			b.Bundle.Fields["created_at"] = structpb.NewStringValue("2025-06-01T12:00:01Z")
			b.Sha256 = ""
			return b
		}, part: bundle.PartBundle, detail: "was changed"},
		"bundle changed and rehashed": {b: func(*testing.T) *typesv1.ConsensusBundle {
			b := proto.Clone(good).(*typesv1.ConsensusBundle)
			b.Bundle.Fields["created_at"] = structpb.NewStringValue("2025-06-01T12:00:01Z")
			p, err := bundle.Payload(b)
			require.NoError(t, err)
			b.Sha256 = canonical.SHA256Hex(p)
			return b
		}, part: bundle.PartBundleSignature, detail: "does not verify"},
		"forged region signature": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) {
				forged := vote(t, f.digest, "us-east", quorum.VerdictAccept, forger)
				c.QuorumCertificate.Votes[1].Signature = forged.GetSignature()
			})
		}, part: bundle.PartCertificate, detail: `region "us-east"`},
		"forged region key": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			// The certificate carries the forger's key for us-east: the registry decides.
			return resign(t, func(c *bundle.Consensus) {
				pub := forger.Public().(ed25519.PublicKey)
				c.QuorumCertificate.RegionKeys[1].PublicKeyPEM = regionkeys.PublicKeyPEM(pub)
				c.QuorumCertificate.RegionKeys[1].KeyID = regionkeys.KeyID(pub)
				c.QuorumCertificate.Votes[1].Signature = vote(t, f.digest, "us-east", quorum.VerdictAccept, forger).GetSignature()
				c.QuorumCertificate.Votes[1].KeyID = regionkeys.KeyID(pub)
			})
		}, part: bundle.PartCertificate, detail: "differs from the registry"},
		"missing region signature": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) { c.QuorumCertificate.Votes[1].Signature = "" })
		}, part: bundle.PartCertificate, detail: "signature"},
		"a vote removed": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) { c.QuorumCertificate.Votes = c.QuorumCertificate.Votes[:1] })
		}, part: bundle.PartCertificate, detail: "not supported by the votes"},
		"certificate of another manifest": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) {
				other := strings.Repeat("ab", 32)
				qc := quorum.FromProto(certificate(t, other))
				c.QuorumCertificate = qc
			})
		}, part: bundle.PartCertificate, detail: "proposal_digest"},
		"agreed manifest differs from the one to enact": {b: func(*testing.T) *typesv1.ConsensusBundle { return good },
			expect: bundle.Expect{Enact: testManifest(t, 40)}, part: bundle.PartAgreedManifest, detail: "not the one the regions agreed to"},
		"agreed manifest changed": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) {
				c.AgreedManifest = []byte(strings.Replace(string(c.AgreedManifest), `"replicas":8`, `"replicas":9`, 1))
			})
		}, part: bundle.PartAgreedManifest, detail: "hashes to"},
		"manifest changed": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) {
				c.Manifest = []byte(strings.Replace(string(c.Manifest), "serviceX", "serviceY", 1))
			})
		}, part: bundle.PartManifest, detail: "hashes to"},
		"manifest signature missing in production": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) { c.ManifestSignature = nil })
		}, part: bundle.PartManifestSignature, missing: true},
		"manifest signature forged": {b: func(t *testing.T) *typesv1.ConsensusBundle {
			return resign(t, func(c *bundle.Consensus) {
				other := signManifest(t, testManifest(t, 13))
				c.ManifestSignature.Signature = other.GetSignature()
			})
		}, part: bundle.PartManifestSignature, detail: "does not verify"},
		"another proposal": {b: func(*testing.T) *typesv1.ConsensusBundle { return good },
			expect: bundle.Expect{ProposalID: "p2"}, part: bundle.PartBundle, detail: "proposal"},
		"another tenant": {b: func(*testing.T) *typesv1.ConsensusBundle { return good },
			expect: bundle.Expect{TenantID: "t2"}, part: bundle.PartBundle, detail: "tenant"},
		"region missing from the registry": {b: func(*testing.T) *typesv1.ConsensusBundle { return good },
			trust: func(tr bundle.Trust) bundle.Trust { delete(tr.Regions, "ap-south"); return tr },
			part:  bundle.PartCertificate, detail: "no trusted key in the registry"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr := trust(t)
			if tc.trust != nil {
				tr = tc.trust(tr)
			}
			want := expect
			if tc.expect != (bundle.Expect{}) {
				want = tc.expect
			}
			_, err := bundle.Verify(tc.b(t), tr, want)
			be := homesPartError(t, err, tc.part)
			require.Equal(t, tc.missing, errors.Is(err, bundle.ErrMissing), "%v", err)
			require.Contains(t, be.Detail, tc.detail)
		})
	}

	// In simulation an unsigned manifest is allowed, but a signature that is present must verify.
	unsigned := f.in
	unsigned.ManifestSignature = nil
	tr := trust(t)
	tr.RequireManifestSignature = false
	_, err = bundle.Verify(signedBundle(t, unsigned), tr, expect)
	require.NoError(t, err)
}

func TestBuildRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.in
	in.Certificate = nil
	_, err := bundle.Build(in)
	requirePart(t, err, bundle.PartCertificate)
	require.ErrorIs(t, err, bundle.ErrMissing)

	in = f.in
	in.Certificate = proto.Clone(f.in.Certificate).(*negotiatorv1.QuorumCertificate)
	in.Certificate.Outcome = quorum.OutcomeRejected
	_, err = bundle.Build(in)
	requirePart(t, err, bundle.PartCertificate)

	in = f.in
	in.Manifest = testManifest(t, 13) // the certificate is of another manifest
	_, err = bundle.Build(in)
	requirePart(t, err, bundle.PartCertificate)
}

func TestParseIsStrict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	payload, err := bundle.Payload(signedBundle(t, f.in))
	require.NoError(t, err)
	c, err := bundle.Parse(payload)
	require.NoError(t, err)
	require.Equal(t, "p1", c.ProposalID)
	for name, bad := range map[string]string{
		"unknown member": strings.Replace(string(payload), `{"agreed_manifest"`, `{"extra":1,"agreed_manifest"`, 1),
		"trailing data":  string(payload) + "{}",
		"wrong type":     strings.Replace(string(payload), bundle.ConsensusType, "something/else", 1),
		"not a manifest": strings.Replace(string(payload), `"action":"scale"`, `"action":7`, 1),
		"not json":       "{",
	} {
		_, err := bundle.Parse([]byte(bad))
		requirePart(t, err, "")
		require.NotEqual(t, string(payload), bad, name)
	}
}

// decisionExport builds a complete export: a signed decision and an audit log with
// the proposal's entries among other proposals' and tenants', checkpointed.
func decisionExport(t testing.TB) (*auditorv1.ExportDecisionResponse, bundle.Keys) {
	t.Helper()
	f := newFixture(t)
	b := signedBundle(t, f.in)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	keys, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	l, err := auditlog.New(auditlog.Options{Store: st, Keys: keys, Now: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	add := func(tenant, proposal, event string, payload map[string]any) {
		_, _, err := l.Append(ctx, auditlog.Event{TenantID: tenant, ProposalID: proposal, Event: event, Actor: "dev", Payload: payload})
		require.NoError(t, err)
	}
	add("t1", "p0", "proposal.submitted", map[string]any{"manifest_sha256": strings.Repeat("0", 64)})
	add("t1", "p1", "proposal.submitted", map[string]any{"manifest_sha256": f.digest, "signed": true})
	add("t2", "p1", "proposal.submitted", map[string]any{"manifest_sha256": f.digest})
	add("t1", "p1", "proposal.negotiating", map[string]any{"manifest_sha256": f.digest})
	add("t1", "p0", "proposal.negotiating", map[string]any{})
	add("t1", "p1", "proposal.agreed", map[string]any{"manifest_sha256": f.digest, "consensus_bundle_sha256": b.GetSha256(), "status": "AGREED"})
	add("t1", "p1", "proposal.enacted", map[string]any{"manifest_sha256": f.digest, "consensus_bundle_sha256": b.GetSha256(), "status": "ENACTED"})
	add("t1", "p0", "proposal.rejected", map[string]any{})
	tr, err := l.Trail(ctx, "t1", "p1")
	require.NoError(t, err)
	require.Len(t, tr.Entries, 4)

	x := bundle.Assemble(&bundle.Decision{TenantID: "t1", ProposalID: "p1", Status: "ENACTED", Manifest: f.manifest,
		ManifestSHA256: f.digest, ManifestSignature: f.sig, ConsensusBundle: b, Approvals: []string{"alice", "bob"},
		SignedApprovals: apvSignedApprovals(t, f.digest)},
		tr, keys.Verifier(), now)
	return x, bundle.Keys{Cosign: trustedRing(t), Regions: registry(t).Trusted(), Audit: keys.Verifier(), ApproverKeys: apvApproverRing(t)}
}

func TestVerifyExport(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	rep, err := bundle.VerifyExport(x, keys)
	require.NoError(t, err)
	var names []string
	for _, s := range rep.Steps {
		names = append(names, s.Name)
	}
	require.Equal(t, []string{
		bundle.PartExport, bundle.PartManifest, bundle.PartManifestSignature, bundle.PartBundleSignature,
		bundle.PartCertificate, bundle.PartAgreedManifest, "approval 0 (alice)", "approval 1 (bob)", bundle.PartApprovals, bundle.PartCheckpoint,
		"audit entry 0 (index 1, proposal.submitted)", "audit entry 1 (index 2, proposal.negotiating)",
		"audit entry 2 (index 4, proposal.agreed)", "audit entry 3 (index 5, proposal.enacted)", bundle.PartAuditTrail, bundle.PartStatus,
	}, names)

	// The export's JSON (the REST body) parses back and verifies the same.
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(x)
	require.NoError(t, err)
	parsed, err := bundle.ParseExport(raw)
	require.NoError(t, err)
	_, err = bundle.VerifyExport(parsed, keys)
	require.NoError(t, err)
}

// TestOneByteChangeFails changes one byte of the exported JSON in each part and checks
// that verification fails naming that part.
func TestOneByteChangeFails(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	pretty, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(x)
	require.NoError(t, err)
	// protojson varies its whitespace; compact it so the needles below match.
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, pretty))
	raw := compact.Bytes()
	js := string(raw)
	// at finds the offset of the first occurrence of needle after the first of after.
	at := func(after, needle string) int {
		start := strings.Index(js, after)
		require.GreaterOrEqual(t, start, 0, after)
		i := strings.Index(js[start:], needle)
		require.GreaterOrEqual(t, i, 0, needle)
		return start + i
	}
	for name, tc := range map[string]struct {
		offset int
		part   string
	}{
		"status":               {at(`"status":"`, `ENACTED`) + 1, bundle.PartStatus},
		"manifest":             {at(`"manifest":`, `serviceX`) + len("service"), bundle.PartManifest},
		"manifest signature":   {at(`"manifest_signature":`, `"signature":"`) + len(`"signature":"`) + 10, bundle.PartManifestSignature},
		"consensus bundle":     {at(`"consensus_bundle":`, `"agreed_manifest":`) + len(`"agreed_manifest":{"action":"s`), bundle.PartBundle},
		"bundle signature":     {at(`"consensus_bundle":`, `"signature":{"signature":"`) + len(`"signature":{"signature":"`) + 10, bundle.PartBundleSignature},
		"region vote":          {at(`"votes":`, `"signature":"`) + len(`"signature":"`) + 5, bundle.PartBundle},
		"audit entry":          {at(`"entries":`, `"event":"proposal.negotiating"`) + len(`"event":"proposal.n`), "audit entry 1"},
		"audit entry summary":  {at(`"event":"proposal.agreed"`, `consensus_bundle_sha256`) + 3, "audit entry 2"},
		"inclusion proof":      {at(`"event":"proposal.enacted"`, `"inclusion_proof":["`) + len(`"inclusion_proof":["`) + 3, "audit entry 3"},
		"checkpoint note":      {at(`"checkpoint":`, `"note":"decision-fabric/audit/t1\n`) + len(`"note":"decision-fabric/audit/t1\n`), bundle.PartCheckpoint},
		"checkpoint signature": {at(`"checkpoint":`, `"mldsa65_signature":"`) + len(`"mldsa65_signature":"`) + 20, bundle.PartCheckpoint},
		"signed approval":      {at(`"signed_approvals":`, `"reason":"`) + len(`"reason":"`) + 2, "approval 0 (alice)"},
		"approver signature":   {at(`"signed_approvals":`, `"approver_signature":"`) + len(`"approver_signature":"`) + 10, "approval 0 (alice)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			changed := []byte(js)
			changed[tc.offset] = flip(changed[tc.offset])
			require.NotEqual(t, raw, changed)
			x, err := bundle.ParseExport(changed)
			if err != nil { // a change that breaks the JSON is refused too
				requirePart(t, err, bundle.PartExport)
				t.Fatalf("the one-byte change made the JSON unparsable at %q; pick a byte that keeps it valid", js[tc.offset-10:tc.offset+10])
			}
			_, err = bundle.VerifyExport(x, keys)
			requirePart(t, err, tc.part)
		})
	}
}

// flip changes a byte to another of the same class, so JSON stays valid: a digit to
// another digit, a base64/hex letter to another letter, '+' and '/' to each other.
func flip(b byte) byte {
	switch {
	case b >= '0' && b <= '8', b >= 'a' && b <= 'y', b >= 'A' && b <= 'Y':
		return b + 1
	case b == '9':
		return '0'
	case b == 'z':
		return 'a'
	case b == 'Z':
		return 'A'
	case b == '+': // the other two base64 characters
		return '/'
	case b == '/':
		return '+'
	}
	panic("flip: unexpected byte " + string(b))
}

func TestVerifyExportWithOtherKeys(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)

	other, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	k := keys
	k.Audit = other.Verifier()
	_, err = bundle.VerifyExport(x, k)
	requirePart(t, err, bundle.PartCheckpoint)

	k = keys
	k.Cosign = &signing.Keyring{}
	_, err = bundle.VerifyExport(x, k)
	requirePart(t, err, bundle.PartManifestSignature)

	k = keys
	otherSeed, err := regionkeys.FromSeed(bytes.Repeat([]byte{1}, regionkeys.SeedSize), regions)
	require.NoError(t, err)
	k.Regions = otherSeed.Trusted()
	_, err = bundle.VerifyExport(x, k)
	requirePart(t, err, bundle.PartCertificate)

	// Parts removed.
	for name, edit := range map[string]func(x *auditorv1.ExportDecisionResponse) string{
		"no bundle": func(x *auditorv1.ExportDecisionResponse) string { x.ConsensusBundle = nil; return bundle.PartBundle },
		"no manifest signature": func(x *auditorv1.ExportDecisionResponse) string {
			x.ManifestSignature = nil
			return bundle.PartManifestSignature
		},
		"no checkpoint": func(x *auditorv1.ExportDecisionResponse) string { x.Checkpoint = nil; return bundle.PartCheckpoint },
		"no entries":    func(x *auditorv1.ExportDecisionResponse) string { x.Entries = nil; return bundle.PartAuditTrail },
		"agreement entry dropped": func(x *auditorv1.ExportDecisionResponse) string {
			x.Entries = x.Entries[:2]
			return bundle.PartAuditTrail
		},
		"entries reordered": func(x *auditorv1.ExportDecisionResponse) string {
			x.Entries[0], x.Entries[1] = x.Entries[1], x.Entries[0]
			return "audit entry 1"
		},
		"another tenant's checkpoint": func(x *auditorv1.ExportDecisionResponse) string { x.TenantId = "t2"; return bundle.PartBundle },
		"status not the audited one":  func(x *auditorv1.ExportDecisionResponse) string { x.Status = "ROLLED_BACK"; return bundle.PartStatus },
	} {
		t.Run(name, func(t *testing.T) {
			c := proto.Clone(x).(*auditorv1.ExportDecisionResponse)
			part := edit(c)
			_, err := bundle.VerifyExport(c, keys)
			requirePart(t, err, part)
		})
	}

	// An unsigned manifest passes only when allowed, and the bundle must agree.
	c := proto.Clone(x).(*auditorv1.ExportDecisionResponse)
	c.ManifestSignature = nil
	k = keys
	k.AllowUnsignedManifest = true
	_, err = bundle.VerifyExport(c, k)
	requirePart(t, err, bundle.PartBundle) // the bundle still says it was signed
}

// TestSealedStoredForm: the stored form (Seal, Encode, DecodeSigned) keeps the signed
// bytes exactly, is the API form's JSON, and verifies like it; Matches checks a
// verified bundle against what the caller expects.
func TestSealedStoredForm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c, err := bundle.Build(f.in)
	require.NoError(t, err)
	sb, err := bundle.Seal(c, signer(t))
	require.NoError(t, err)
	raw, err := sb.Encode()
	require.NoError(t, err)

	back, err := bundle.DecodeSigned(raw)
	require.NoError(t, err)
	require.Equal(t, sb.Payload, back.Payload, "the signed bytes come back exactly")
	require.True(t, proto.Equal(sb.Signature, back.Signature))
	want := bundle.Expect{TenantID: "t1", ProposalID: "p1", ManifestSHA256: f.digest, Enact: f.agreed}
	verified, err := bundle.VerifySigned(back, trust(t), want)
	require.NoError(t, err)

	// The stored form is the API form's protojson, and the API form's document gives
	// back the signed bytes (what the decision export and cosign verify).
	api := &typesv1.ConsensusBundle{}
	require.NoError(t, protojson.Unmarshal(raw, api))
	payload, err := bundle.Payload(api)
	require.NoError(t, err)
	require.Equal(t, sb.Payload, payload)
	fromProto, err := sb.Proto()
	require.NoError(t, err)
	require.True(t, proto.Equal(api, fromProto))
	_, err = bundle.Verify(api, trust(t), want)
	require.NoError(t, err)

	// Spacing does not matter (the document is canonicalised); content does.
	spaced := bytes.Replace(raw, []byte(`{"bundle":{`), []byte(`{ "bundle" : {  `), 1)
	back, err = bundle.DecodeSigned(spaced)
	require.NoError(t, err)
	require.Equal(t, sb.Payload, back.Payload)
	changed := bytes.Replace(raw, []byte(`"tenant_id":"t1"`), []byte(`"tenant_id":"t2"`), 1)
	require.NotEqual(t, raw, changed)
	back, err = bundle.DecodeSigned(changed)
	require.NoError(t, err)
	_, err = bundle.VerifySigned(back, trust(t), bundle.Expect{})
	requirePart(t, err, bundle.PartBundle)

	for _, bad := range []string{`{`, `[]`, `{"bundle":null,"sha256":"x"}`, `{"bundle":{},"extra":1}`, `{"bundle":{}} {}`} {
		_, err := bundle.DecodeSigned([]byte(bad))
		requirePart(t, err, bundle.PartBundle)
	}

	// Matches: what Check compares with the caller's expectation, nothing else.
	require.NoError(t, verified.Matches(want))
	for name, w := range map[string]bundle.Expect{
		"tenant":   {TenantID: "t2"},
		"proposal": {ProposalID: "p2"},
		"manifest": {ManifestSHA256: canonical.SHA256Hex([]byte("other"))},
		"enact":    {Enact: f.manifest},
	} {
		err := verified.Matches(w)
		require.Error(t, err, name)
		require.ErrorIs(t, err, bundle.ErrInvalid, name)
	}
}

// TestExportFromTrailIsTheExport: a decision export assembled by a reader from the
// coordinator's record (GetProposal, ListDecisionRecords) and the auditor's trail
// (GetAuditTrail) is the auditor's export, field for field, and verifies the same: the
// sim-canary's replay verifies with it and needs no ExportDecision.
func TestExportFromTrailIsTheExport(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	p := &coordinatorv1.Proposal{Id: x.GetProposalId(), TenantId: x.GetTenantId(),
		Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED, Manifest: x.GetManifest(),
		ManifestSha256: x.GetManifestSha256(), ManifestSignature: x.GetManifestSignature(),
		ConsensusBundle: x.GetConsensusBundle(), Approvers: x.GetApprovals(), Approvals: x.GetSignedApprovals()}
	trail := &auditorv1.GetAuditTrailResponse{Checkpoint: x.GetCheckpoint(), Entries: x.GetEntries()}
	got := bundle.FromTrail(bundle.FromProposal(p), trail, now)
	require.True(t, proto.Equal(x, got), "got %v\nwant %v", got, x)
	_, err := bundle.VerifyExport(got, keys)
	require.NoError(t, err)
}
