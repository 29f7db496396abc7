// Package tests runs the proposal composer in-process (fabrictest) and checks the spec's
// I.4.2 behaviour over REST: POST /compose returns a signed manifest, GET /templates
// lists the templates, and every composed manifest is accepted by the decision
// coordinator as it comes out of the composer (manifest and signature unchanged).
package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// composed is a ComposeResponse as REST returns it; manifest and signature stay raw so
// they can be submitted to the coordinator byte for byte.
type composed struct {
	Manifest       json.RawMessage `json:"manifest"`
	ManifestSHA256 string          `json:"manifest_sha256"`
	Signature      json.RawMessage `json:"signature"`
	TemplateID     string          `json:"template_id"`
	Redactions     []string        `json:"redactions"`
	SelectedBy     string          `json:"selected_by"`
}

func decode(t *testing.T, r fabrictest.Response) composed {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var c composed
	require.NoError(t, json.Unmarshal(r.Body, &c))
	return c
}

// verify checks the response's signature over the canonical JSON of its manifest.
func verify(t *testing.T, c composed) *typesv1.Manifest {
	t.Helper()
	var m typesv1.Manifest
	require.NoError(t, protojson.Unmarshal(c.Manifest, &m))
	var sig typesv1.ManifestSignature
	require.NoError(t, protojson.Unmarshal(c.Signature, &sig))
	payload, err := canonical.Proto(&m)
	require.NoError(t, err)
	require.Equal(t, canonical.SHA256Hex(payload), c.ManifestSHA256)
	require.NoError(t, signing.Verify([]byte(sig.GetPublicKey()), payload, sig.GetSignature()))
	return &m
}

func TestComposeOverREST(t *testing.T) {
	t.Parallel()
	f := fabrictest.Start(t, fabrictest.Options{Targets: []string{fabric.Composer}})
	tok := f.Token(t, "t1", auth.RoleProposer)

	// The spec's verification body, as written.
	c := decode(t, f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, `{"context":"reduce cost","tenant_id":"t1"}`))
	require.Equal(t, "reduce-cost", c.TemplateID)
	require.Equal(t, "keywords", c.SelectedBy)
	m := verify(t, c)
	require.Equal(t, "reduce_cost", m.GetAction())
	require.Equal(t, "default-service", m.GetTarget())
	require.Equal(t, "t1", m.GetTenantId())

	// The key is the fabric's simulation key in data_dir.
	key, err := signing.LoadOrCreateSimulationKey(f.Cfg.DataDir)
	require.NoError(t, err)
	var sig typesv1.ManifestSignature
	require.NoError(t, protojson.Unmarshal(c.Signature, &sig))
	require.Equal(t, key.KeyID(), sig.GetKeyId())

	// Same request, same manifest and hash.
	again := decode(t, f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, `{"context":"reduce cost","tenant_id":"t1"}`))
	require.JSONEq(t, string(c.Manifest), string(again.Manifest))
	require.Equal(t, c.ManifestSHA256, again.ManifestSHA256)

	// Redaction over REST: values gone, notes name path and kind.
	r := decode(t, f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok,
		`{"tenant_id":"t1","context":"scale out, page jane@example.com","target":"serviceX","regions":["eu-west"],
		  "metric_hints":{"cpu":0.97},"signals":{"owner":"jane@example.com","api_key":"sk-live-1"}}`))
	require.NotContains(t, string(r.Manifest), "jane@")
	require.NotContains(t, string(r.Manifest), "sk-live")
	require.Equal(t, []string{"context: email", "signals.api_key: secret", "signals.owner: email"}, r.Redactions)
	m = verify(t, r)
	require.Equal(t, 2.0, m.GetParameters().AsMap()["replicas_delta"], "the model's suggestion for 97% CPU")

	// Templates.
	lt := f.Do(t, http.MethodGet, fabric.Composer, "/templates", f.Token(t, "t1", auth.RoleAuditor), "")
	require.Equal(t, http.StatusOK, lt.Status, string(lt.Body))
	var list struct {
		Templates []struct {
			ID       string   `json:"id"`
			Action   string   `json:"action"`
			Keywords []string `json:"keywords"`
			Impact   string   `json:"impact"`
		} `json:"templates"`
	}
	require.NoError(t, json.Unmarshal(lt.Body, &list))
	var ids []string
	for _, tpl := range list.Templates {
		ids = append(ids, tpl.ID)
		require.NotEmpty(t, tpl.Keywords)
		require.NotEmpty(t, tpl.Action)
		require.NotEmpty(t, tpl.Impact)
	}
	require.Equal(t, []string{"scale-out", "scale-in", "reduce-cost", "configure"}, ids)

	// Errors.
	for _, e := range []struct {
		name, token, body string
		status            int
	}{
		{"no token", "", `{"context":"reduce cost","tenant_id":"t1"}`, http.StatusUnauthorized},
		{"another tenant", tok, `{"context":"reduce cost","tenant_id":"t2"}`, http.StatusForbidden},
		{"auditor may not compose", f.Token(t, "t1", auth.RoleAuditor), `{"context":"reduce cost","tenant_id":"t1"}`, http.StatusForbidden},
		{"no tenant", tok, `{"context":"reduce cost"}`, http.StatusBadRequest},
		{"no context", tok, `{"tenant_id":"t1"}`, http.StatusBadRequest},
		{"context over 4 KiB", tok, `{"tenant_id":"t1","context":"` + strings.Repeat("cost ", 900) + `"}`, http.StatusBadRequest},
		{"unknown template", tok, `{"tenant_id":"t1","context":"reduce cost","template_id":"teleport"}`, http.StatusBadRequest},
		{"no target", tok, `{"tenant_id":"t1","context":"scale out"}`, http.StatusBadRequest},
		{"bad region", tok, `{"tenant_id":"t1","context":"reduce cost","regions":["EU_WEST"]}`, http.StatusBadRequest},
		{"NaN hint", tok, `{"tenant_id":"t1","context":"reduce cost","metric_hints":{"cpu":"NaN"}}`, http.StatusBadRequest},
		{"nothing matches", tok, `{"tenant_id":"t1","context":"hello there"}`, http.StatusBadRequest},
		{"unknown field", tok, `{"tenant_id":"t1","context":"reduce cost","colour":"red"}`, http.StatusBadRequest},
	} {
		resp := f.Do(t, http.MethodPost, fabric.Composer, "/compose", e.token, e.body)
		require.Equal(t, e.status, resp.Status, "%s: %s", e.name, resp.Body)
	}
	resp := f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, `{"tenant_id":"t1","context":"reduce cost","template_id":"teleport"}`)
	require.Contains(t, string(resp.Body), "valid: scale-out, scale-in, reduce-cost, configure")
	resp = f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, `{"tenant_id":"t1","context":"scale out"}`)
	require.Contains(t, string(resp.Body), "target is required for template scale-out")

	// Metrics (P4).
	met := f.Do(t, http.MethodGet, fabric.Composer, "/metrics", "", "")
	require.Equal(t, http.StatusOK, met.Status)
	require.Contains(t, string(met.Body), `fabric_composer_compositions_total{template="reduce-cost"} 2`)
	require.Contains(t, string(met.Body), `fabric_composer_redactions_total{kind="email"} 2`)
	require.Contains(t, string(met.Body), `fabric_composer_redactions_total{kind="secret"} 1`)
}

// TestComposedManifestsAreAccepted composes with every template and submits each
// result to the coordinator exactly as composed (manifest and signature fields of the
// compose response): the coordinator checks the manifest (manifest.Validate), P1 and
// the signature against the fabric's key, and accepts it. A manifest changed after
// composing is refused.
func TestComposedManifestsAreAccepted(t *testing.T) {
	t.Parallel()
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st})
			tok := f.Token(t, "t1", auth.RoleProposer)
			lt := f.Do(t, http.MethodGet, fabric.Composer, "/templates", tok, "")
			require.Equal(t, http.StatusOK, lt.Status, string(lt.Body))
			var list struct {
				Templates []struct {
					ID string `json:"id"`
				} `json:"templates"`
			}
			require.NoError(t, json.Unmarshal(lt.Body, &list))
			require.NotEmpty(t, list.Templates)

			for _, tpl := range list.Templates {
				body := fmt.Sprintf(`{"tenant_id":"t1","context":"change requested by ops@example.com","template_id":%q,
					"target":"service-%s","regions":["eu-west"],"signals":{"config":{"feature_x":true},"requested_by":"ops@example.com"}}`, tpl.ID, tpl.ID)
				c := decode(t, f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, body))
				require.Equal(t, tpl.ID, c.TemplateID)
				verify(t, c)

				submit := fmt.Sprintf(`{"tenant_id":"t1","manifest":%s,"signature":%s}`, c.Manifest, c.Signature)
				r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, submit)
				require.Equal(t, http.StatusOK, r.Status, "%s: %s", tpl.ID, r.Body)
				var sub struct {
					Proposal struct {
						ManifestSHA256 string `json:"manifest_sha256"`
					} `json:"proposal"`
				}
				require.NoError(t, json.Unmarshal(r.Body, &sub))
				require.Equal(t, c.ManifestSHA256, sub.Proposal.ManifestSHA256, "the coordinator hashes the same canonical bytes")
			}

			// Changed after composing: refused (P2).
			c := decode(t, f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, `{"context":"reduce cost","tenant_id":"t1"}`))
			tampered := strings.Replace(string(c.Manifest), `"default-service"`, `"another-service"`, 1)
			require.NotEqual(t, string(c.Manifest), tampered)
			r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, fmt.Sprintf(`{"tenant_id":"t1","manifest":%s,"signature":%s}`, tampered, c.Signature))
			require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		})
	}
}

// TestConsentedPersonalData: with a consent signed by a trusted key, the composer keeps
// the consented e-mail, and the coordinator verifies the consent and accepts it.
func TestConsentedPersonalData(t *testing.T) {
	t.Parallel()
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	tok := f.Token(t, "t1", auth.RoleProposer)
	key, err := signing.LoadOrCreateSimulationKey(f.Cfg.DataDir)
	require.NoError(t, err)
	consent := &typesv1.Consent{GrantedBy: "policy-42", Scopes: []string{"email"}}
	payload, err := canonical.Proto(consent)
	require.NoError(t, err)
	consent.Signature, err = key.Sign(payload)
	require.NoError(t, err)
	cj, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(consent)
	require.NoError(t, err)

	body := fmt.Sprintf(`{"tenant_id":"t1","context":"reduce cost, owner ops.lead@example.com, call +44 20 7946 0958","consent":%s}`, cj)
	c := decode(t, f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, body))
	require.Contains(t, string(c.Manifest), "ops.lead@example.com", "consented")
	require.NotContains(t, string(c.Manifest), "7946", "not consented")
	require.Equal(t, []string{"context: phone"}, c.Redactions)
	verify(t, c)

	r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, fmt.Sprintf(`{"tenant_id":"t1","manifest":%s,"signature":%s}`, c.Manifest, c.Signature))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
}
