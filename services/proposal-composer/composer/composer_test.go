package composer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/consent"
	"github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/signing"
)

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func provenance(resp *composerv1.ComposeResponse) map[string]any {
	p, _ := resp.GetManifest().GetParameters().AsMap()[ReservedParameter].(map[string]any)
	return p
}

// manifestJSON is the manifest as the coordinator's P1 check sees it (without consent).
func manifestJSON(t testing.TB, m *typesv1.Manifest) map[string]any {
	t.Helper()
	m = proto.Clone(m).(*typesv1.Manifest)
	m.Consent = nil
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	require.NoError(t, err)
	s := &structpb.Struct{}
	require.NoError(t, protojson.Unmarshal(raw, s))
	return s.AsMap()
}

func TestNewRequiresSigner(t *testing.T) {
	t.Parallel()
	_, err := New(Deps{})
	require.ErrorContains(t, err, "Signer is required")
	_, err = New(Deps{Signer: testSigner(t), TemplatesPath: "missing.yaml"})
	require.Error(t, err)
}

func TestComposeSpecExample(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	// {"context":"reduce cost","tenant_id":"t1"}, exactly as the spec sends it.
	resp, err := s.Compose(tenantCtx("t1"), &composerv1.ComposeRequest{Context: "reduce cost", TenantId: "t1"})
	require.NoError(t, err)
	m := resp.GetManifest()
	require.Equal(t, "reduce_cost", m.GetAction())
	require.Equal(t, "default-service", m.GetTarget(), "the template's default target")
	require.Empty(t, m.GetRegions(), "the tenant's default region")
	require.Equal(t, "low", m.GetImpact())
	require.Equal(t, "t1", m.GetTenantId(), "the signature is bound to the tenant")
	require.Equal(t, -1.0, m.GetParameters().AsMap()["replicas_delta"])
	require.Equal(t, "reduce-cost", resp.GetTemplateId())
	require.Equal(t, SelectedByKeywords, resp.GetSelectedBy())
	require.Empty(t, resp.GetRedactions())
	require.NoError(t, manifest.Validate(m))

	p := provenance(resp)
	require.Equal(t, "reduce cost", p["context"])
	require.Equal(t, "reduce-cost", p["template_id"])
	require.Equal(t, "simulated", p["model"].(map[string]any)["provider"])
	require.Equal(t, "reduce_cost", p["model"].(map[string]any)["action"])

	payload, err := canonical.Proto(m)
	require.NoError(t, err)
	require.Equal(t, canonical.SHA256Hex(payload), resp.GetManifestSha256())
	require.Equal(t, testSigner(t).KeyID(), resp.GetSignature().GetKeyId())
	require.NoError(t, signing.Verify([]byte(resp.GetSignature().GetPublicKey()), payload, resp.GetSignature().GetSignature()))
}

func TestSignature(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	resp, err := compose(t, s, &composerv1.ComposeRequest{Context: "scale out, latency is high", Target: "serviceX", Regions: []string{"eu-west", "us-east"}})
	require.NoError(t, err)
	pub := []byte(resp.GetSignature().GetPublicKey())
	sig := resp.GetSignature().GetSignature()

	// The signature covers exactly the canonical bytes, also after the manifest went
	// through JSON (as a REST client sees it).
	raw, err := protojson.Marshal(resp.GetManifest())
	require.NoError(t, err)
	var back typesv1.Manifest
	require.NoError(t, protojson.Unmarshal(raw, &back))
	payload, err := canonical.Proto(&back)
	require.NoError(t, err)
	require.NoError(t, signing.Verify(pub, payload, sig))
	id, err := signing.KeyIDFromPEM(pub)
	require.NoError(t, err)
	require.Equal(t, resp.GetSignature().GetKeyId(), id)

	// One changed byte anywhere breaks it.
	for _, i := range []int{0, len(payload) / 2, len(payload) - 1} {
		tampered := append([]byte(nil), payload...)
		tampered[i] ^= 0x01
		require.ErrorIs(t, signing.Verify(pub, tampered, sig), signing.ErrBadSignature, "byte %d", i)
	}
	// So does a changed tenant (the signature is bound to it).
	other := proto.Clone(&back).(*typesv1.Manifest)
	other.TenantId = "t2"
	otherPayload, err := canonical.Proto(other)
	require.NoError(t, err)
	require.ErrorIs(t, signing.Verify(pub, otherPayload, sig), signing.ErrBadSignature)
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	req := &composerv1.ComposeRequest{
		TenantId: "t1", Context: "reduce cost for ops@example.com", Target: "batch", Regions: []string{"us-east", "eu-west"},
		MetricHints: map[string]float64{"cpu": 0.42, "error_rate": 0.01, "latency": 0.3},
		Signals:     mustStruct(t, map[string]any{"owner": "ops@example.com", "tags": []any{"a", "b"}, "n": 3.0, "nested": map[string]any{"z": 1.0, "a": 2.0}}),
	}
	a, err := s.Compose(tenantCtx("t1"), proto.Clone(req).(*composerv1.ComposeRequest))
	require.NoError(t, err)
	b, err := s.Compose(tenantCtx("t1"), proto.Clone(req).(*composerv1.ComposeRequest))
	require.NoError(t, err)
	ca, err := canonical.Proto(a.GetManifest())
	require.NoError(t, err)
	cb, err := canonical.Proto(b.GetManifest())
	require.NoError(t, err)
	require.Equal(t, string(ca), string(cb))
	require.Equal(t, a.GetManifestSha256(), b.GetManifestSha256())
	require.Equal(t, a.GetRedactions(), b.GetRedactions())
	require.NotEqual(t, a.GetSignature().GetSignature(), b.GetSignature().GetSignature(), "ECDSA signatures are randomised")
	for _, r := range []*composerv1.ComposeResponse{a, b} {
		require.NoError(t, signing.Verify([]byte(r.GetSignature().GetPublicKey()), ca, r.GetSignature().GetSignature()))
	}
	// A fresh service (same templates, same model) agrees too.
	s2, _ := newTestService(t, Deps{})
	c, err := s2.Compose(tenantCtx("t1"), proto.Clone(req).(*composerv1.ComposeRequest))
	require.NoError(t, err)
	require.Equal(t, a.GetManifestSha256(), c.GetManifestSha256())
}

func TestComposeTargetAndRegions(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	_, err := compose(t, s, &composerv1.ComposeRequest{Context: "scale out"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, err.Error(), "target is required for template scale-out")

	resp, err := compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost", Target: "batch-workers", Regions: []string{"eu-west"}})
	require.NoError(t, err)
	require.Equal(t, "batch-workers", resp.GetManifest().GetTarget(), "the request's target wins over the default")
	require.Equal(t, []string{"eu-west"}, resp.GetManifest().GetRegions())

	yaml := `
templates:
  - id: regional
    description: d
    action: scale
    impact: high
    keywords: [grow]
    default_target: web
    default_regions: [eu-west, us-east]
    parameters: {replicas: 3}
`
	ts, err := ParseTemplates([]byte(yaml))
	require.NoError(t, err)
	s2, _ := newTestService(t, Deps{Templates: ts})
	resp, err = compose(t, s2, &composerv1.ComposeRequest{Context: "grow"})
	require.NoError(t, err)
	require.Equal(t, "web", resp.GetManifest().GetTarget())
	require.Equal(t, []string{"eu-west", "us-east"}, resp.GetManifest().GetRegions())
	require.Equal(t, "high", resp.GetManifest().GetImpact())
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	sim, _ := newTestService(t, Deps{})

	// The simulated model asks for 2 replicas at 99% CPU; scale-out allows 1..10.
	resp, err := compose(t, sim, &composerv1.ComposeRequest{Context: "scale out", Target: "api", MetricHints: map[string]float64{"cpu": 0.99}})
	require.NoError(t, err)
	require.Equal(t, 2.0, resp.GetManifest().GetParameters().AsMap()["replicas_delta"])
	require.Equal(t, map[string]any{"replicas_delta": "model"}, provenance(resp)["overrides"])

	// Signals win over the model, within bounds.
	resp, err = compose(t, sim, &composerv1.ComposeRequest{Context: "scale out", Target: "api", MetricHints: map[string]float64{"cpu": 0.99},
		Signals: mustStruct(t, map[string]any{"replicas_delta": 4})})
	require.NoError(t, err)
	require.Equal(t, 4.0, resp.GetManifest().GetParameters().AsMap()["replicas_delta"])
	require.Equal(t, map[string]any{"replicas_delta": "signals"}, provenance(resp)["overrides"])

	// Out of bounds, mistyped or fractional overrides are ignored and say why.
	resp, err = compose(t, sim, &composerv1.ComposeRequest{Context: "scale out", Target: "api",
		Signals: mustStruct(t, map[string]any{"replicas_delta": 500})})
	require.NoError(t, err)
	require.Equal(t, 1.0, resp.GetManifest().GetParameters().AsMap()["replicas_delta"])
	require.Equal(t, []any{"signals replicas_delta: 500 is above the maximum 10"}, provenance(resp)["ignored_overrides"])

	fm := &fakeModel{sug: model.Suggestion{Action: "scale", Parameters: map[string]any{"replicas_delta": 1.5}, Impact: "medium", Confidence: 0.9}}
	s, _ := newTestService(t, Deps{Model: fm})
	resp, err = compose(t, s, &composerv1.ComposeRequest{Context: "scale out", Target: "api"})
	require.NoError(t, err)
	require.Equal(t, 1.0, resp.GetManifest().GetParameters().AsMap()["replicas_delta"])
	require.Equal(t, []any{"model replicas_delta: 1.5 is not an integer"}, provenance(resp)["ignored_overrides"])

	// A suggestion of another action never overrides: here the keywords chose
	// reduce-cost while the model asked to scale.
	resp, err = compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost"})
	require.NoError(t, err)
	require.Equal(t, -1.0, resp.GetManifest().GetParameters().AsMap()["replicas_delta"])
	require.Nil(t, provenance(resp)["overrides"])

	// configure takes its config from the signals (or the model).
	resp, err = compose(t, sim, &composerv1.ComposeRequest{Context: "flip the feature flag", Target: "checkout",
		Signals: mustStruct(t, map[string]any{"config": map[string]any{"new_checkout": true}})})
	require.NoError(t, err)
	require.Equal(t, "configure", resp.GetManifest().GetAction())
	require.Equal(t, map[string]any{"new_checkout": true}, resp.GetManifest().GetParameters().AsMap()["config"])
}

func TestModelFailure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		model  model.Provider
		reason string
	}{
		{"error", &fakeModel{err: errors.New("connection refused to http://u:p@nf.internal")}, "unavailable"},
		{"contract", &fakeModel{sug: model.Suggestion{Action: "scale", Confidence: 7}}, "invalid response"},
		{"timeout", slowModel{}, "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, reg := newTestService(t, Deps{Model: c.model, ModelTimeout: 20 * time.Millisecond})
			resp, err := compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost"})
			require.NoError(t, err, "keywords and template defaults suffice")
			require.Equal(t, -1.0, resp.GetManifest().GetParameters().AsMap()["replicas_delta"])
			require.Equal(t, c.reason, provenance(resp)["model"].(map[string]any)["error"])
			require.Equal(t, 1.0, counter(t, s.metrics.modelErrors))
			_ = reg

			_, err = compose(t, s, &composerv1.ComposeRequest{Context: "hello"})
			require.Equal(t, codes.Unavailable, status.Code(err), "nothing to go on without the model")
		})
	}
}

// slowModel answers only when the request's deadline has passed.
type slowModel struct{}

func (slowModel) Suggest(ctx context.Context, _ model.SuggestRequest) (model.Suggestion, error) {
	<-ctx.Done()
	return model.Suggestion{}, fmt.Errorf("model: suggest: %w", ctx.Err())
}

func (slowModel) Assess(context.Context, model.AssessRequest) (model.Assessment, error) {
	return model.Assessment{}, errors.New("not used")
}

func (slowModel) Name() string { return "slow" }

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }

func TestModelSeesOnlyRedactedInput(t *testing.T) {
	t.Parallel()
	fm := &fakeModel{sug: model.Suggestion{Action: "reduce_cost", Confidence: 0.5, Rationale: "mail jane@example.com about it"}}
	s, _ := newTestService(t, Deps{Model: fm})
	resp, err := compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost, ask jane@example.com", Target: "db 10.1.2.3",
		MetricHints: map[string]float64{"cpu": 0.3, "password": 1}})
	require.NoError(t, err)
	got := fm.last()
	require.Equal(t, "reduce cost, ask <REDACTED:email>", got.Context)
	require.Equal(t, "db <REDACTED:ipv4>", got.Target)
	require.Equal(t, map[string]float64{"cpu": 0.3}, got.MetricHints, "a hint named like a secret is dropped")
	require.Equal(t, "mail <REDACTED:email> about it", provenance(resp)["model"].(map[string]any)["rationale"])
	require.Equal(t, []string{"target: ipv4", "context: email", "metric_hints.password: secret", "model.rationale: email"}, resp.GetRedactions())
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	keys := &signing.Keyring{}
	_, err := keys.Add(testSigner(t).PublicKeyPEM())
	require.NoError(t, err)
	s, _ := newTestService(t, Deps{TrustedKeys: keys})
	stranger, err := signing.GenerateEd25519()
	require.NoError(t, err)
	signals := map[string]any{
		"owner":     "alice@example.com",
		"email":     "bob@example.com",
		"phone":     "+44 20 7946 0958",
		"api_key":   "sk-live-123",
		"note":      "card 4111 1111 1111 1111, iban GB82WEST12345698765432, ssn 123-45-6789, from 10.0.0.1",
		"full_name": "Ada Lovelace",
		"nested":    map[string]any{"password": "hunter2", "contact": "carol@example.com"},
	}
	context := "reduce cost; ping alice@example.com or +1 (555) 123-4567; password=hunter2; Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
	all := []string{"email", "phone", "card", "iban", "national_id", "ipv4", "ipv6", "pii_field"}
	for _, c := range []struct {
		name    string
		consent *typesv1.Consent
		signer  signing.Signer // signs consent; nil leaves it as it is
		keep    []string       // substrings that must survive
		gone    []string       // substrings that must not
		notes   []string       // redaction notes that must be present
		absent  []string       // redaction notes that must be absent
	}{
		{
			name: "no consent: every PII kind and every secret",
			gone: []string{"alice@", "bob@", "carol@", "7946", "555", "4111", "GB82", "123-45", "10.0.0.1", "Lovelace", "hunter2", "sk-live", "eyJ"},
			notes: []string{"context: email", "context: phone", "context: secret_assignment", "context: jwt",
				"signals.owner: email", "signals.email: email", "signals.phone: phone", "signals.api_key: secret",
				"signals.note: card", "signals.note: iban", "signals.note: national_id", "signals.note: ipv4",
				"signals.full_name: pii_field", "signals.nested.password: secret", "signals.nested.contact: email"},
		},
		{
			name:    "consent to email only",
			consent: &typesv1.Consent{GrantedBy: "user-42", Scopes: []string{"email"}},
			signer:  testSigner(t),
			keep:    []string{"alice@example.com", "bob@example.com", "carol@example.com"},
			gone:    []string{"7946", "555", "4111", "Lovelace", "hunter2", "sk-live", "eyJ"},
			absent:  []string{"context: email", "signals.owner: email", "signals.email: email"},
			notes:   []string{"context: phone", "signals.phone: phone", "signals.full_name: pii_field"},
		},
		{
			name:    "consent to everything still redacts secrets",
			consent: &typesv1.Consent{GrantedBy: "policy:gdpr-7", Scopes: all, GrantedAt: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
			signer:  testSigner(t),
			keep:    []string{"alice@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82WEST12345698765432", "123-45-6789", "10.0.0.1", "Ada Lovelace"},
			gone:    []string{"hunter2", "sk-live", "eyJ"},
			notes:   []string{"context: secret_assignment", "context: jwt", "signals.api_key: secret", "signals.nested.password: secret"},
			absent:  []string{"context: email", "signals.full_name: pii_field"},
		},
		{
			name:    "unsigned consent is ignored",
			consent: &typesv1.Consent{GrantedBy: "user-42", Scopes: all},
			gone:    []string{"alice@", "bob@", "7946", "Lovelace"},
			notes:   []string{"consent: unverified", "context: email", "signals.email: email", "signals.full_name: pii_field"},
		},
		{
			name:    "consent signed by an untrusted key is ignored",
			consent: &typesv1.Consent{GrantedBy: "user-42", Scopes: []string{"email"}},
			signer:  stranger,
			gone:    []string{"alice@", "bob@"},
			notes:   []string{"consent: unverified", "context: email"},
		},
		{
			name:    "consent without granted_by is ignored",
			consent: &typesv1.Consent{Scopes: []string{"email"}},
			gone:    []string{"alice@", "bob@"},
			notes:   []string{"context: email", "signals.email: email"},
		},
		{
			name:    "consent without scopes is ignored",
			consent: &typesv1.Consent{GrantedBy: "user-42"},
			gone:    []string{"alice@", "bob@"},
			notes:   []string{"context: email"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.signer != nil {
				require.NoError(t, consent.Sign(c.signer, c.consent))
			}
			resp, err := compose(t, s, &composerv1.ComposeRequest{Context: context, Signals: mustStruct(t, signals), Consent: c.consent})
			require.NoError(t, err)
			raw, err := protojson.Marshal(resp.GetManifest())
			require.NoError(t, err)
			out := string(raw)
			for _, k := range c.keep {
				require.Contains(t, out, k)
			}
			for _, g := range c.gone {
				require.NotContains(t, out, g)
			}
			for _, n := range c.notes {
				require.Contains(t, resp.GetRedactions(), n)
			}
			for _, n := range c.absent {
				require.NotContains(t, resp.GetRedactions(), n)
			}
			for _, n := range resp.GetRedactions() {
				for _, v := range []string{"alice", "hunter2", "4111", "Lovelace"} {
					require.NotContains(t, n, v, "notes never carry values")
				}
			}
			pol, verr := consent.Verify(keys, c.consent)
			if verr == nil {
				require.True(t, proto.Equal(c.consent, resp.GetManifest().GetConsent()), "a verified consent travels with the manifest")
			} else {
				require.Nil(t, resp.GetManifest().GetConsent())
			}
			// What the coordinator checks (P1): under the consented kinds nothing is left
			// to redact, so the manifest is submittable.
			_, notes := redact.Value(manifestJSON(t, resp.GetManifest()), pol)
			require.Empty(t, notes)
			require.NoError(t, manifest.Validate(resp.GetManifest()))
		})
	}
}

func TestRedactedTargetTooLong(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	target := strings.Repeat("a@b.io ", 36) // 252 bytes; each 6-byte address becomes 16
	_, err := compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost", Target: target})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.NotContains(t, err.Error(), "a@b.io")
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	deep := map[string]any{"x": 1.0}
	for range 20 {
		deep = map[string]any{"d": deep}
	}
	many := map[string]float64{}
	for i := range 65 {
		many[strings.Repeat("h", i+1)] = 1
	}
	for _, c := range []struct {
		name string
		req  *composerv1.ComposeRequest
		code codes.Code
		msg  string
	}{
		{"no tenant", &composerv1.ComposeRequest{Context: "reduce cost"}, codes.InvalidArgument, "tenant_id is required"},
		{"other tenant", &composerv1.ComposeRequest{TenantId: "t2", Context: "reduce cost"}, codes.PermissionDenied, "does not match"},
		{"no context", &composerv1.ComposeRequest{TenantId: "t1"}, codes.InvalidArgument, "context is required"},
		{"blank context", &composerv1.ComposeRequest{TenantId: "t1", Context: " \n\t "}, codes.InvalidArgument, "context is required"},
		{"context too long", &composerv1.ComposeRequest{TenantId: "t1", Context: strings.Repeat("cost ", 820)}, codes.InvalidArgument, "at most 4096"},
		{"target too long", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Target: strings.Repeat("x", 257)}, codes.InvalidArgument, "target"},
		{"target control", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Target: "a\nb"}, codes.InvalidArgument, "target"},
		{"region format", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Regions: []string{"EU West"}}, codes.InvalidArgument, "regions[0]"},
		{"region leading dash", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Regions: []string{"-eu"}}, codes.InvalidArgument, "regions[0]"},
		{"region duplicate", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Regions: []string{"eu", "us", "eu"}}, codes.InvalidArgument, "regions[2]"},
		{"region is a phone", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Regions: []string{"555-123-4567"}}, codes.InvalidArgument, "personal data"},
		{"unknown template", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", TemplateId: "x@example.com"}, codes.InvalidArgument, "valid: scale-out, scale-in, reduce-cost, configure"},
		{"NaN hint", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", MetricHints: map[string]float64{"cpu": nan()}}, codes.InvalidArgument, "finite"},
		{"Inf hint", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", MetricHints: map[string]float64{"cpu": inf()}}, codes.InvalidArgument, "finite"},
		{"too many hints", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", MetricHints: many}, codes.InvalidArgument, "at most 64"},
		{"empty hint name", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", MetricHints: map[string]float64{"": 1}}, codes.InvalidArgument, "names"},
		{"deep signals", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Signals: mustStruct(t, deep)}, codes.InvalidArgument, "deeper"},
		{"NaN signal", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Signals: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(nan())}}}, codes.InvalidArgument, "finite"},
		{"untyped signal", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Signals: &structpb.Struct{Fields: map[string]*structpb.Value{"x": {}}}}, codes.InvalidArgument, "without a type"},
		{"unknown scope", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Consent: &typesv1.Consent{GrantedBy: "u1", Scopes: []string{"secret"}}}, codes.InvalidArgument, "unknown scope"},
		{"granted_by is an email", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Consent: &typesv1.Consent{GrantedBy: "jane@example.com", Scopes: []string{"email"}}}, codes.InvalidArgument, "not personal data"},
		{"consent signature not base64", &composerv1.ComposeRequest{TenantId: "t1", Context: "cost", Consent: &typesv1.Consent{GrantedBy: "u1", Scopes: []string{"email"}, Signature: "me@example.com"}}, codes.InvalidArgument, "base64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Compose(tenantCtx("t1"), c.req)
			require.Equal(t, c.code, status.Code(err), "%v", err)
			require.Contains(t, err.Error(), c.msg)
			require.NotContains(t, err.Error(), "@example.com", "errors never echo personal data")
		})
	}
	_, err := s.Compose(t.Context(), &composerv1.ComposeRequest{TenantId: "t1", Context: "cost"})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no principal: fail closed")
}

func TestEveryTemplateComposesASubmittableManifest(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	for _, tpl := range s.Templates().List() {
		for _, ctxText := range append([]string{"do it"}, tpl.Keywords...) {
			resp, err := compose(t, s, &composerv1.ComposeRequest{Context: ctxText, TemplateId: tpl.ID, Target: "serviceX", Regions: []string{"eu-west"}})
			require.NoError(t, err, "%s / %q", tpl.ID, ctxText)
			require.Equal(t, tpl.ID, resp.GetTemplateId())
			require.Equal(t, tpl.Action, resp.GetManifest().GetAction())
			require.NoError(t, manifest.Validate(resp.GetManifest()))
			_, notes := redact.Value(manifestJSON(t, resp.GetManifest()), redact.Policy{})
			require.Empty(t, notes)
		}
		// Selected by its own keywords (the first one), without naming it.
		resp, err := compose(t, s, &composerv1.ComposeRequest{Context: tpl.Keywords[0], Target: "serviceX"})
		require.NoError(t, err)
		require.Equal(t, tpl.ID, resp.GetTemplateId(), "keyword %q", tpl.Keywords[0])
	}
}

func TestListTemplates(t *testing.T) {
	t.Parallel()
	s, _ := newTestService(t, Deps{})
	resp, err := s.ListTemplates(tenantCtx("t1"), &composerv1.ListTemplatesRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetTemplates(), 4)
	so := resp.GetTemplates()[0]
	require.Equal(t, "scale-out", so.GetId())
	require.Equal(t, "scale", so.GetAction())
	require.Equal(t, "medium", so.GetImpact())
	require.Contains(t, so.GetKeywords(), "latency")
	require.Equal(t, []string{"replicas_delta"}, so.GetModelOverrides())
	require.Equal(t, 1.0, so.GetParameters().AsMap()["replicas_delta"])
	require.Equal(t, "default-service", resp.GetTemplates()[2].GetDefaultTarget())
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s, reg := newTestService(t, Deps{})
	_, err := compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost for a@example.com and b@example.com"})
	require.NoError(t, err)
	_, err = compose(t, s, &composerv1.ComposeRequest{Context: "reduce cost", Signals: mustStruct(t, map[string]any{"token": "x"})})
	require.NoError(t, err)
	require.Equal(t, 2.0, counter(t, s.metrics.compositions.WithLabelValues("reduce-cost")))
	require.Equal(t, 0.0, counter(t, s.metrics.compositions.WithLabelValues("scale-out")))
	require.Equal(t, 1.0, counter(t, s.metrics.redactions.WithLabelValues("email")), "one note per path and kind")
	require.Equal(t, 1.0, counter(t, s.metrics.redactions.WithLabelValues("secret")))
	families, err := reg.Gather()
	require.NoError(t, err)
	series := map[string]int{}
	for _, f := range families {
		series[f.GetName()] = len(f.GetMetric())
	}
	require.Equal(t, map[string]int{
		"fabric_composer_compositions_total": 4, "fabric_composer_redactions_total": 13, "fabric_composer_model_errors_total": 1,
	}, series, "zeros are exported for every template and kind")
}

// counter reads a counter's value.
func counter(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
