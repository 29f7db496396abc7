package negotiator

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/federation"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
)

// admitFixture is one region (its honest RegionServer) and the coordinator's
// RemoteAgent for it, on a controllable clock.
type admitFixture struct {
	server   *RegionServer
	agent    *RemoteAgent
	now      time.Time
	refused  map[string]int
	deadline time.Time
}

func newAdmitFixture(t testing.TB, signWith ed25519.PrivateKey) *admitFixture {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	if signWith == nil {
		signWith = key
	}
	f := &admitFixture{now: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), refused: map[string]int{}}
	f.deadline = f.now.Add(3 * time.Second)
	clock := func() time.Time { return f.now }
	f.server, err = NewRegionServer(RegionServerConfig{Key: signWith, Now: clock,
		Limits: RegionLimits{Region: RegionConfig{Name: "eu-west", Weight: 1, ErrorBudget: 1, Capacity: 20}, MaxReplicas: 50}})
	require.NoError(t, err)
	f.agent = NewRemoteAgent(federation.Region{Name: "eu-west", Endpoint: "127.0.0.1:1", Weight: 1, PublicKey: pub},
		nil, clock, func(r string) { f.refused[r]++ })
	return f
}

func offerManifest(replicas float64) *typesv1.Manifest {
	return &typesv1.Manifest{Action: "scale", Target: "serviceX", Regions: []string{"eu-west"},
		Parameters: &structpb.Struct{Fields: map[string]*structpb.Value{"replicas": structpb.NewNumberValue(replicas)}}}
}

// request is what RemoteAgent.Vote sends for a round-1 offer.
func (f *admitFixture) request(m *typesv1.Manifest) (*negotiatorv1.RequestVoteRequest, string) {
	_, digest, err := manifestpkg.Canonical(m)
	if err != nil {
		panic(err)
	}
	return &negotiatorv1.RequestVoteRequest{Region: "eu-west", NegotiationId: ulid.Make().String(), TenantId: "t1",
		ProposalId: "p1", ProposalDigest: digest, Round: 1, Offer: m, Nonce: newNonce(),
		Deadline: timestamppb.New(f.deadline)}, digest
}

func (f *admitFixture) answer(t testing.TB, req *negotiatorv1.RequestVoteRequest) *negotiatorv1.RegionVote {
	t.Helper()
	resp, err := f.server.RequestVote(t.Context(), req)
	require.NoError(t, err)
	return resp.GetVote()
}

func refusedReason(err error) string {
	var r *RefusedVoteError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func TestAdmitVote(t *testing.T) {
	f := newAdmitFixture(t, nil)
	req, digest := f.request(offerManifest(30))
	v := f.answer(t, req)
	got, err := f.agent.admit(v, req, digest, f.deadline)
	require.NoError(t, err)
	require.Equal(t, negotiatorv1.Verdict_VERDICT_COUNTER, got.Verdict, "capacity 20 counters 30 replicas")
	require.Contains(t, got.Reason, "capacity is 20")

	// The same answer again: its request was answered already.
	_, err = f.agent.admit(v, req, digest, f.deadline)
	require.Equal(t, RefusedDuplicate, refusedReason(err))

	// A genuine vote for another request (another nonce, negotiation) is a replay.
	req2, _ := f.request(offerManifest(30))
	v2 := f.answer(t, req2)
	req3, _ := f.request(offerManifest(30))
	_, err = f.agent.admit(v2, req3, digest, f.deadline)
	require.Equal(t, RefusedReplayed, refusedReason(err))
	req4, _ := f.request(offerManifest(30))
	v4 := f.answer(t, req4)
	req4b := proto.Clone(req4).(*negotiatorv1.RequestVoteRequest)
	req4b.Round = 2
	_, err = f.agent.admit(v4, req4b, digest, f.deadline)
	require.Equal(t, RefusedReplayed, refusedReason(err), "same nonce, another round")

	// Any field changed after signing: forged.
	req5, _ := f.request(offerManifest(10))
	v5 := f.answer(t, req5)
	for name, mutate := range map[string]func(*negotiatorv1.RegionVote){
		"verdict": func(v *negotiatorv1.RegionVote) { v.Verdict = negotiatorv1.Verdict_VERDICT_REJECT },
		"reason":  func(v *negotiatorv1.RegionVote) { v.Reason = "edited" },
		"cast_at": func(v *negotiatorv1.RegionVote) { v.CastAt = timestamppb.New(f.now.Add(-time.Second)) },
		"nonce":   func(v *negotiatorv1.RegionVote) { v.Nonce = newNonce() },
		"key_id":  func(v *negotiatorv1.RegionVote) { v.KeyId = "0000" },
		"sig":     func(v *negotiatorv1.RegionVote) { v.Signature = v5.GetEnvelopeSignature() },
	} {
		m := proto.Clone(v5).(*negotiatorv1.RegionVote)
		mutate(m)
		_, err := f.agent.admit(m, req5, digest, f.deadline)
		require.Equal(t, RefusedForged, refusedReason(err), name)
	}

	// Signed after the deadline: late.
	req6, d6 := f.request(offerManifest(10))
	f.now = f.deadline.Add(-time.Millisecond)
	v6 := f.answer(t, req6)
	f.now = f.deadline.Add(time.Millisecond)
	_, err = f.agent.admit(v6, req6, d6, f.deadline)
	require.Equal(t, RefusedLate, refusedReason(err))

	_, err = f.agent.admit(nil, req6, d6, f.deadline)
	require.Equal(t, RefusedMalformed, refusedReason(err))
}

func TestAdmitRefusesAnotherKey(t *testing.T) {
	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	f := newAdmitFixture(t, other) // the region signs with a key the registry does not hold
	req, digest := f.request(offerManifest(10))
	_, err = f.agent.admit(f.answer(t, req), req, digest, f.deadline)
	require.Equal(t, RefusedForged, refusedReason(err))
}

func TestRegionServerRequests(t *testing.T) {
	f := newAdmitFixture(t, nil)
	req, _ := f.request(offerManifest(10))
	bad := map[string]func(*negotiatorv1.RequestVoteRequest){
		"negotiation id": func(r *negotiatorv1.RequestVoteRequest) { r.NegotiationId = "x" },
		"digest":         func(r *negotiatorv1.RequestVoteRequest) { r.ProposalDigest = "ab" },
		"round-1 digest": func(r *negotiatorv1.RequestVoteRequest) { r.ProposalDigest = strings.Repeat("a", 64) },
		"round":          func(r *negotiatorv1.RequestVoteRequest) { r.Round = 0 },
		"nonce":          func(r *negotiatorv1.RequestVoteRequest) { r.Nonce = "short" },
		"deadline":       func(r *negotiatorv1.RequestVoteRequest) { r.Deadline = nil },
		"offer":          func(r *negotiatorv1.RequestVoteRequest) { r.Offer = nil },
		"tenant":         func(r *negotiatorv1.RequestVoteRequest) { r.TenantId = "" },
	}
	for name, mutate := range bad {
		r := proto.Clone(req).(*negotiatorv1.RequestVoteRequest)
		mutate(r)
		_, err := f.server.RequestVote(t.Context(), r)
		require.ErrorContains(t, err, "InvalidArgument", name)
	}
	other := proto.Clone(req).(*negotiatorv1.RequestVoteRequest)
	other.Region = "us-east"
	_, err := f.server.RequestVote(t.Context(), other)
	require.ErrorContains(t, err, "FailedPrecondition")
	f.now = f.deadline
	_, err = f.server.RequestVote(t.Context(), req)
	require.ErrorContains(t, err, "FailedPrecondition")
}

// FuzzAdmitVote: an incoming vote is untrusted input. Whatever bytes arrive, admit
// never panics, and it admits only a vote both of whose signatures verify with the
// registry's key for this request.
func FuzzAdmitVote(f *testing.F) {
	fx := newAdmitFixture(f, nil)
	req, digest := fx.request(offerManifest(30))
	seed, err := proto.Marshal(fx.answer(f, req))
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte{})
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v negotiatorv1.RegionVote
		if proto.Unmarshal(raw, &v) != nil {
			return
		}
		agent := NewRemoteAgent(federation.Region{Name: "eu-west", PublicKey: fx.agent.region.PublicKey}, nil,
			func() time.Time { return fx.now }, nil)
		got, err := agent.admit(&v, req, digest, fx.deadline)
		if err != nil {
			require.NotEmpty(t, refusedReason(err), "every refusal has a reason: %v", err)
			return
		}
		require.NoError(t, VerifyVote(fx.agent.region.PublicKey, digest, got.Round, got.Region, got.Verdict, got.Signature))
		require.Equal(t, req.GetNonce(), v.GetNonce())
	})
}

func TestNewRegionServerChecksLimits(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for name, l := range map[string]RegionLimits{
		"bad name":     {Region: RegionConfig{Name: "EU"}},
		"bad action":   {Region: RegionConfig{Name: "eu"}, AllowedActions: []string{"Scale!"}},
		"dup action":   {Region: RegionConfig{Name: "eu"}, AllowedActions: []string{"scale", "scale"}},
		"negative max": {Region: RegionConfig{Name: "eu"}, MaxReplicas: -1},
	} {
		_, err := NewRegionServer(RegionServerConfig{Limits: l, Key: key})
		require.Error(t, err, name)
	}
	_, err = NewRegionServer(RegionServerConfig{Limits: RegionLimits{Region: RegionConfig{Name: "eu"}}})
	require.ErrorContains(t, err, "Ed25519 private key")
}
