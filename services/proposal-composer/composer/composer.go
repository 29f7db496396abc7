// Package composer is the proposal composer (I.4.2): it turns signals (free-text
// context, optional target, regions, metric hints and structured signals) into a
// decision manifest from a template, fills it with the model's suggestion, redacts
// personal data unless the tenant consented (P1), and signs the manifest's canonical
// JSON in cosign's key format (P2).
//
// # Composition
//
// Compose, for a request that passed validation (see validateCompose) and whose
// tenant_id is the token's tenant (P5):
//
//  1. Redacts the request with the consent's policy (see "Redaction"): target,
//     context, metric hints and signals. Only redacted data goes further: to the model,
//     into the manifest, into logs.
//  2. Asks the model (Deps.Model) for a suggestion: the redacted context, target,
//     regions and hints. A failed or slow model (Deps.ModelTimeout) is logged and
//     counted, and composition goes on without it.
//  3. Chooses the template (Templates.Select): the request's template_id, else the
//     best keyword match in the context, else the template producing the model's
//     suggested action.
//  4. Builds the manifest: the template's action and impact; the request's target
//     or the template's default_target (neither: INVALID_ARGUMENT "target is required
//     for template X"); the request's regions or the template's default_regions;
//     parameters from the template's defaults, replaced by the model's suggestion where
//     the template allows (model_overrides, only when the model suggested the
//     template's action) and then by same-named structured signals
//     (signal_overrides); tenant_id is the request's tenant, which binds the signature
//     to it; consent is the request's consent when it is verified.
//  5. Records provenance under parameters.provenance: template id, how it was
//     chosen, matched keywords, the redacted context, hints and signals, the model's
//     answer (provider, action, impact, confidence, rationale, parameters) or its failure, and
//     which overrides were applied or ignored and why.
//  6. Checks the manifest with manifest.Validate, the rule the coordinator applies on
//     submission, takes its RFC 8785 canonical JSON and SHA256 (manifest.Canonical),
//     and signs exactly those bytes with Deps.Signer.
//
// The manifest is a pure function of the request, the templates and the model's
// answer: no clock, no randomness, so the same request gives the same manifest bytes
// and hash (the simulated model is deterministic). ECDSA signatures are randomised, so
// the signature differs per call; each verifies.
//
// # Redaction
//
// Personal data (emails, phone numbers, card numbers that pass Luhn, national ids,
// IBANs, IP addresses, and named PII fields such as "name", "address" or "dob" in
// structured input) is replaced by "<REDACTED:kind>" unless the request carries a
// consent that consent.Verify accepts: granted_by and scopes set, signed by one of
// Deps.TrustedKeys; its scopes (consent.Scopes) name the kinds that may stay. An
// unverified consent keeps nothing, is not copied into the manifest, and is noted. Secrets and tokens (JWTs, bearer
// tokens, password=..., URL credentials, fields named password, token, api_key, ...)
// are always redacted, whatever the consent says. A structured field whose name marks
// it as a secret, or as personal data that is not allowed, is left out of the manifest
// (a placeholder under such a name would still be refused by the coordinator's P1
// check). The response lists what was redacted as "path: kind", never the value.
//
// The coordinator verifies the consent again when the manifest is submitted.
package composer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/decision-fabric/fabric/internal/consent"
	"github.com/decision-fabric/fabric/internal/policy"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/signing"
)

// Request limits; each violation is INVALID_ARGUMENT naming the field.
const (
	// MaxContextBytes bounds the free-text context (4 KiB).
	MaxContextBytes = 4 << 10
	maxMetricHints  = 64
	maxHintKey      = 128
	maxRationale    = 2 << 10
)

// DefaultModelTimeout bounds the model's suggestion.
const DefaultModelTimeout = 5 * time.Second

// Deps are the composer's collaborators. Signer is required.
type Deps struct {
	// Model suggests changes; model.NewSimulated() when nil.
	Model model.Provider
	// Signer signs manifests: the cosign key at COSIGN_KEY_PATH in production, the
	// simulation key in data_dir otherwise (the app decides).
	Signer signing.Signer
	// Templates is the template set; when nil, TemplatesPath is loaded, or the embedded
	// templates.yaml when that is empty too.
	Templates *Templates
	// TemplatesPath is a templates.yaml to use instead of the embedded one.
	TemplatesPath string
	// Logger; discards when nil.
	Logger *slog.Logger
	// Registerer receives the composer's metrics; a private registry when nil.
	Registerer prometheus.Registerer
	// ModelTimeout bounds each suggestion; DefaultModelTimeout when 0.
	ModelTimeout time.Duration
	// TrustedKeys verify consent signatures (P1): only a consent signed by one of
	// them keeps personal data. Nil trusts no consent.
	TrustedKeys *signing.Keyring
}

// Service implements composerv1.ComposerServiceServer.
type Service struct {
	composerv1.UnimplementedComposerServiceServer
	deps      Deps
	templates *Templates
	metrics   *metrics
}

// New returns the composer, filling unset optional Deps with their defaults. It fails
// without a Signer, on an invalid templates file, or when the metrics cannot be
// registered.
func New(deps Deps) (*Service, error) {
	if deps.Signer == nil {
		return nil, errors.New("composer: Deps.Signer is required (manifests are signed, P2)")
	}
	if deps.Model == nil {
		deps.Model = model.NewSimulated()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.ModelTimeout <= 0 {
		deps.ModelTimeout = DefaultModelTimeout
	}
	ts := deps.Templates
	if ts == nil {
		var err error
		if deps.TemplatesPath != "" {
			ts, err = LoadTemplates(deps.TemplatesPath)
		} else {
			ts, err = ParseTemplates(DefaultTemplatesYAML)
		}
		if err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(deps.Registerer, ts.IDs())
	if err != nil {
		return nil, err
	}
	return &Service{deps: deps, templates: ts, metrics: m}, nil
}

// Templates returns the service's template set.
func (s *Service) Templates() *Templates { return s.templates }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + composerv1.ComposerService_ServiceDesc.ServiceName + "/" + name }
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.Composer,
		Register: func(g grpc.ServiceRegistrar) { composerv1.RegisterComposerServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return composerv1.RegisterComposerServiceHandlerClient(ctx, mux, composerv1.NewComposerServiceClient(conn))
		},
		Policy: auth.Policy{
			m("Compose"):       {auth.RoleProposer, auth.RoleService},
			m("ListTemplates"): readers,
		},
		// Compose validates its request itself (direct Go callers get the same checks),
		// so it has no interceptor validator: the request is walked once.
	}
}

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// validateCompose checks a request's shape: tenant_id set; context set (not only
// spaces) and at most 4 KiB; target at most 256 printable characters; regions in the
// coordinator's format ([a-z0-9-], 1-64, at most 32, no duplicates, nothing that looks
// like personal data); template_id a known template; at most 64 metric hints with
// names of 1-128 bytes and finite values; signals at most 64 KiB, 1000 values, depth
// 16, finite numbers; consent well formed (see checkConsent). Messages never echo
// request text unredacted.
func (s *Service) validateCompose(r *composerv1.ComposeRequest) error {
	if r.GetTenantId() == "" {
		return invalid("tenant_id is required")
	}
	if strings.TrimSpace(r.GetContext()) == "" {
		return invalid("context is required: say what you want, e.g. \"reduce cost\"")
	}
	if n := len(r.GetContext()); n > MaxContextBytes {
		return invalid("context: %d bytes, at most %d", n, MaxContextBytes)
	}
	if err := checkTarget(r.GetTarget()); err != nil {
		return invalid("target: %v", err)
	}
	if _, err := checkRegions(r.GetRegions()); err != nil {
		return invalid("regions%v", err)
	}
	if id := r.GetTemplateId(); id != "" {
		if _, ok := s.templates.Get(id); !ok {
			return invalid("template_id %q: unknown template; valid: %s", redact.Echo(id), strings.Join(s.templates.IDs(), ", "))
		}
	}
	if n := len(r.GetMetricHints()); n > maxMetricHints {
		return invalid("metric_hints: %d, at most %d", n, maxMetricHints)
	}
	for _, k := range slices.Sorted(maps.Keys(r.GetMetricHints())) {
		if k == "" || len(k) > maxHintKey {
			return invalid("metric_hints: names must be 1-%d bytes", maxHintKey)
		}
		if v := r.GetMetricHints()[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			return invalid("metric_hints[%q]: %v is not a finite number", redact.Echo(k), v)
		}
	}
	if sig := r.GetSignals(); sig != nil {
		if n := proto.Size(sig); n > maxStructBytes {
			return invalid("signals: %d bytes, at most %d", n, maxStructBytes)
		}
		if err := checkStruct(sig); err != nil {
			return invalid("signals: %v", err)
		}
	}
	if err := consent.Check(r.GetConsent()); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// ListTemplates implements the RPC: every template, in file order.
func (s *Service) ListTemplates(context.Context, *composerv1.ListTemplatesRequest) (*composerv1.ListTemplatesResponse, error) {
	out := &composerv1.ListTemplatesResponse{}
	for _, t := range s.templates.List() {
		out.Templates = append(out.Templates, t.Proto())
	}
	return out, nil
}

// Compose implements the RPC (see the package documentation). It validates the request
// itself too, so direct Go callers get the same checks as RPC callers.
func (s *Service) Compose(ctx context.Context, req *composerv1.ComposeRequest) (*composerv1.ComposeResponse, error) {
	if err := auth.RequireTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := s.validateCompose(req); err != nil {
		return nil, err
	}
	d, err := s.compose(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, err := s.sign(d)
	if err != nil {
		return nil, err
	}
	s.metrics.compositions.WithLabelValues(d.selection.Template.ID).Inc()
	for _, n := range d.redactions {
		_, k, _ := strings.Cut(n, ": ")
		s.metrics.redactions.WithLabelValues(k).Inc()
	}
	s.deps.Logger.InfoContext(ctx, "manifest composed", "tenant_id", req.GetTenantId(),
		"template_id", d.selection.Template.ID, "selected_by", d.selection.By, "action", d.manifest.GetAction(),
		"manifest_sha256", resp.GetManifestSha256(), "key_id", resp.GetSignature().GetKeyId(),
		"redactions", len(d.redactions), "model_available", d.suggestion != nil)
	return resp, nil
}

// draft is a composed, unsigned manifest.
type draft struct {
	manifest   *typesv1.Manifest
	selection  Selection
	redactions []string
	suggestion *model.Suggestion
}

// compose builds the manifest of a valid request for its tenant.
func (s *Service) compose(ctx context.Context, req *composerv1.ComposeRequest) (*draft, error) {
	c := req.GetConsent()
	var pol redact.Policy
	if c != nil {
		var err error
		if pol, err = consent.Verify(s.deps.TrustedKeys, c); err != nil {
			// An unverified consent exempts nothing and does not travel with the
			// manifest (the coordinator would refuse it).
			s.deps.Logger.InfoContext(ctx, "compose: consent ignored; all personal data is redacted", "reason", err.Error())
			c = nil
		}
	}
	r := &redactor{policy: pol}
	if req.GetConsent() != nil && c == nil {
		r.notes = append(r.notes, "consent: unverified") // unsigned, incomplete or signed by an untrusted key
	}

	// 1. Redact every input before anything else sees it.
	target := r.str("target", req.GetTarget())
	if len(target) > maxTarget {
		return nil, invalid("target: holds personal data, and is longer than %d bytes once redacted", maxTarget)
	}
	text := strings.TrimSpace(r.str("context", req.GetContext()))
	hints := map[string]float64{}
	var hintsJSON map[string]any
	if len(req.GetMetricHints()) > 0 {
		raw := make(map[string]any, len(req.GetMetricHints()))
		for k, v := range req.GetMetricHints() {
			raw[k] = v
		}
		hintsJSON, _ = r.value("metric_hints", raw).(map[string]any)
		for k, v := range hintsJSON {
			if f, ok := v.(float64); ok {
				hints[k] = f
			} else {
				delete(hintsJSON, k) // a redacted number (a card number, say)
			}
		}
	}
	var signals map[string]any
	if req.GetSignals() != nil {
		signals, _ = r.value("signals", req.GetSignals().AsMap()).(map[string]any)
	}
	regions := slices.Clone(req.GetRegions())

	// 2. Ask the model.
	sug, sugParams, sugErr := s.suggest(ctx, model.SuggestRequest{
		TenantID: req.GetTenantId(), Context: text, Target: target, Regions: regions, MetricHints: hints,
	}, r)

	// 3. Choose the template.
	sel, err := s.templates.Select(req.GetTemplateId(), text, sug, sugParams)
	if err != nil {
		return nil, err
	}
	t := sel.Template

	// 4. Target, regions, parameters.
	if target == "" {
		target = t.DefaultTarget
	}
	if target == "" {
		return nil, invalid("target is required for template %s: name the resource to change in \"target\"", t.ID)
	}
	if len(regions) == 0 {
		regions = slices.Clone(t.DefaultRegions)
	}
	params := deepCopy(t.Parameters).(map[string]any)
	applied := map[string]any{}
	var ignored []any
	override := func(source string, bounds map[string]Bounds, from map[string]any) {
		for _, name := range sortedKeys(bounds) {
			v, ok := from[name]
			if !ok {
				continue
			}
			if why := bounds[name].check(t.Parameters[name], v); why != "" {
				ignored = append(ignored, fmt.Sprintf("%s %s: %s", source, name, why))
				continue
			}
			params[name] = deepCopy(v)
			applied[name] = source
		}
	}
	if sug != nil && sug.Action == t.Action {
		override("model", t.ModelOverrides, sugParams)
	}
	override("signals", t.SignalOverrides, signals)

	// 5. Provenance.
	prov := map[string]any{
		"template_id": t.ID,
		"selected_by": sel.By,
		"context":     text,
	}
	if len(sel.Matched) > 0 {
		prov["matched_keywords"] = toAnySlice(sel.Matched)
	}
	if len(hintsJSON) > 0 {
		prov["metric_hints"] = hintsJSON
	}
	if signals != nil {
		prov["signals"] = deepCopy(signals)
	}
	if sug != nil {
		mp := map[string]any{
			"provider":   s.deps.Model.Name(),
			"action":     r.str("model.action", sug.Action),
			"impact":     sug.Impact,
			"confidence": sug.Confidence,
			"rationale":  rationale(r, sug.Rationale),
		}
		if len(sugParams) > 0 {
			mp["parameters"] = deepCopy(sugParams)
		}
		prov["model"] = mp
	} else {
		prov["model"] = map[string]any{"provider": s.deps.Model.Name(), "error": sugErr}
	}
	if len(applied) > 0 {
		prov["overrides"] = applied
	}
	if len(ignored) > 0 {
		prov["ignored_overrides"] = ignored
	}
	params[ReservedParameter] = prov

	ps, err := structpb.NewStruct(params)
	if err != nil {
		return nil, fmt.Errorf("composer: parameters: %w", err)
	}
	m := &typesv1.Manifest{
		Action: t.Action, Target: target, Regions: regions, Impact: t.Impact, Parameters: ps,
		TenantId: req.GetTenantId(),
	}
	if c != nil {
		m.Consent = proto.Clone(c).(*typesv1.Consent)
	}
	// 6. The coordinator's own check: a composed manifest is always submittable.
	if err := manifest.Validate(m); err != nil {
		return nil, status.Errorf(codes.Internal, "composer: template %s produced an invalid manifest: %v", t.ID, status.Convert(err).Message())
	}
	return &draft{manifest: m, selection: sel, redactions: r.notes, suggestion: sug}, nil
}

// suggest asks the model, bounded by Deps.ModelTimeout. It returns the suggestion
// (nil when the model failed), its parameters redacted and as JSON-like data, and for
// a failure a short reason for the provenance (never the error text, which could
// carry an address).
func (s *Service) suggest(ctx context.Context, in model.SuggestRequest, r *redactor) (*model.Suggestion, map[string]any, string) {
	mctx, cancel := context.WithTimeout(ctx, s.deps.ModelTimeout)
	defer cancel()
	sug, err := s.deps.Model.Suggest(mctx, in)
	if err == nil {
		err = checkSuggestion(sug)
	}
	if err != nil {
		s.metrics.modelErrors.Inc()
		s.deps.Logger.WarnContext(ctx, "compose: model suggestion unavailable; composing without it",
			"provider", s.deps.Model.Name(), "error", redact.Error(err))
		reason := "unavailable"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = "timeout"
		} else if errors.Is(err, model.ErrInvalidResponse) {
			reason = "invalid response"
		}
		return nil, nil, reason
	}
	params := map[string]any{}
	if sug.Parameters != nil {
		p, err := jsonLike(sug.Parameters)
		if err == nil {
			err = checkJSONLike(p)
		}
		if err != nil {
			s.deps.Logger.WarnContext(ctx, "compose: ignoring the model's parameters", "provider", s.deps.Model.Name(), "error", redact.Error(err))
		} else {
			params, _ = r.value("model.parameters", p).(map[string]any)
		}
	}
	return &sug, params, ""
}

// checkSuggestion applies the model contract (model.Provider) again: a provider is a
// remote service, and the composer trusts nothing it did not check.
func checkSuggestion(s model.Suggestion) error {
	switch {
	case s.Action == "" || len(s.Action) > 64:
		return fmt.Errorf("%w: action of %d bytes", model.ErrInvalidResponse, len(s.Action))
	case math.IsNaN(s.Confidence) || s.Confidence < 0 || s.Confidence > 1:
		return fmt.Errorf("%w: confidence %v", model.ErrInvalidResponse, s.Confidence)
	}
	switch s.Impact {
	case "", policy.ImpactLow, policy.ImpactMedium, policy.ImpactHigh:
	default:
		return fmt.Errorf("%w: impact", model.ErrInvalidResponse)
	}
	return nil
}

// sign hashes and signs a draft.
func (s *Service) sign(d *draft) (*composerv1.ComposeResponse, error) {
	payload, sum, err := manifest.Canonical(d.manifest)
	if err != nil {
		return nil, fmt.Errorf("composer: canonical manifest: %w", err)
	}
	sig, err := s.deps.Signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("composer: sign manifest: %w", err)
	}
	return &composerv1.ComposeResponse{
		Manifest:       d.manifest,
		ManifestSha256: sum,
		Signature: &typesv1.ManifestSignature{
			Signature: sig, KeyId: s.deps.Signer.KeyID(), PublicKey: string(s.deps.Signer.PublicKeyPEM()),
		},
		TemplateId: d.selection.Template.ID,
		Redactions: d.redactions,
		SelectedBy: d.selection.By,
	}, nil
}

// deepCopy copies JSON-like data.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

func toAnySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// rationale redacts the model's rationale and cuts it to maxRationale bytes (at a
// rune boundary; redacted again, since a cut could in theory form a new finding).
func rationale(r *redactor, s string) string {
	s = r.str("model.rationale", s)
	if len(s) <= maxRationale {
		return s
	}
	n := maxRationale
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return redact.String(s[:n])
}
