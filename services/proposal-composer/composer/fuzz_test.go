package composer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/signing"
)

// FuzzParseTemplates: the templates parser never panics, and whatever it accepts is a
// usable template set (valid ids and actions, parameters that are JSON, selection that
// does not panic).
func FuzzParseTemplates(f *testing.F) {
	f.Add(DefaultTemplatesYAML)
	f.Add([]byte("templates:\n  - {id: a, description: d, action: scale, impact: low, keywords: [x y], parameters: {n: 1}, model_overrides: {n: {min: 0, max: 2, integer: true}}}\n"))
	f.Add([]byte("templates: [{id: a, description: d, action: scale, impact: low, default_target: t, default_regions: [eu]}]"))
	f.Add([]byte("templates: [{id: a, description: d, action: scale, impact: low, parameters: {x: &a [1, *a]}}]"))
	f.Add([]byte("templates: [{id: a, description: d, action: scale, impact: low, parameters: {x: !!binary aGk=}}]"))
	f.Add([]byte("templates:\n  - id: a\n    <<: {description: d}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ts, err := ParseTemplates(raw)
		if err != nil {
			return
		}
		for _, tpl := range ts.List() {
			if !reTemplateID.MatchString(tpl.ID) || !manifest.ValidAction(tpl.Action) {
				t.Fatalf("accepted template %q / action %q", tpl.ID, tpl.Action)
			}
			if _, err := structpb.NewStruct(tpl.Parameters); err != nil {
				t.Fatalf("parameters of %s are not JSON: %v", tpl.ID, err)
			}
			if _, ok := tpl.Parameters[ReservedParameter]; ok {
				t.Fatalf("%s uses the reserved parameter", tpl.ID)
			}
			if _, err := protojson.Marshal(tpl.Proto()); err != nil {
				t.Fatalf("template %s does not marshal: %v", tpl.ID, err)
			}
			for _, k := range tpl.Keywords {
				if _, err := ts.Select("", k, nil, nil); err != nil {
					t.Fatalf("keyword %q of %s selects nothing: %v", k, tpl.ID, err)
				}
			}
		}
	})
}

// FuzzCompose: random context, target, signals, hints and regions never make Compose
// panic; every composed manifest passes the coordinator's checks (shape and P1), its
// signature verifies, and no e-mail address found in the input appears in the response
// (nor in an error message).
func FuzzCompose(f *testing.F) {
	f.Add("reduce cost", "", "owner", "alice@example.com", "cpu", 0.5, "", "")
	f.Add("scale out, latency; mail bob@example.com", "serviceX", "email", "bob@example.com", "latency", 0.97, "", "eu-west")
	f.Add("flip flag for carol@example.com", "svc carol@example.com", "config", "x", "password", 1.0, "configure", "us-east-1")
	f.Add("reduce cost password=hunter2 Bearer abcdefghijklmnopqrstuvwxyz", "a@b.co", "api_key", "sk", "a@b.co", 2.0, "reduce-cost", "")
	f.Add("idle +44 20 7946 0958 4111 1111 1111 1111", "10.0.0.1", "replicas_delta", "-2", "cpu", 0.01, "", "555-123-4567")
	f.Add("x", "", "", "", "", 0.0, "nope", "-")
	f.Add(strings.Repeat("cost a@b.co ", 400), strings.Repeat("a@b.io ", 36), "k", "v", "h", 1e300, "", "eu")
	s, _ := newTestService(f, Deps{})
	pub := testSigner(f).PublicKeyPEM()
	f.Fuzz(func(t *testing.T, text, target, sigKey, sigVal, hintKey string, hintVal float64, templateID, region string) {
		for _, in := range []string{text, target, sigKey, sigVal, hintKey, templateID, region} {
			if !utf8.ValidString(in) {
				t.Skip("proto strings are UTF-8; the RPC layer refuses anything else")
			}
		}
		req := &composerv1.ComposeRequest{TenantId: "t1", Context: text, Target: target, TemplateId: templateID}
		if region != "" {
			req.Regions = []string{region}
		}
		if hintKey != "" {
			req.MetricHints = map[string]float64{hintKey: hintVal}
		}
		if sigKey != "" {
			req.Signals = &structpb.Struct{Fields: map[string]*structpb.Value{
				sigKey:   structpb.NewStringValue(sigVal),
				"nested": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{sigKey: structpb.NewStringValue(sigVal)}}),
			}}
		}
		var emails []string
		for _, in := range []string{text, target, sigKey, sigVal, hintKey, templateID, region} {
			for _, fd := range redact.Find(in) {
				if fd.Kind == redact.KindEmail {
					emails = append(emails, in[fd.Start:fd.End])
				}
			}
		}

		resp, err := s.Compose(tenantCtx("t1"), req)
		if err != nil {
			switch status.Code(err) {
			case codes.InvalidArgument, codes.Unavailable:
			default:
				t.Fatalf("unexpected error: %v", err)
			}
			for _, e := range emails {
				if strings.Contains(err.Error(), e) {
					t.Fatalf("error leaks %q: %v", e, err)
				}
			}
			return
		}
		m := resp.GetManifest()
		if err := manifest.Validate(m); err != nil {
			t.Fatalf("coordinator refuses the manifest: %v", err)
		}
		if _, notes := redact.Value(manifestJSON(t, m), redact.Policy{}); len(notes) > 0 {
			t.Fatalf("the coordinator's P1 check would refuse: %v", notes)
		}
		payload, err := canonical.Proto(m)
		if err != nil {
			t.Fatal(err)
		}
		if canonical.SHA256Hex(payload) != resp.GetManifestSha256() {
			t.Fatal("hash does not match the canonical manifest")
		}
		if err := signing.Verify(pub, payload, resp.GetSignature().GetSignature()); err != nil {
			t.Fatalf("signature: %v", err)
		}
		out, err := protojson.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range emails {
			if strings.Contains(string(out), e) {
				t.Fatalf("response leaks %q: %s", e, out)
			}
		}
	})
}
