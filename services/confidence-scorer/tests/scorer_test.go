// Package tests runs the confidence scorer beside the decision coordinator (each its own
// process module, sharing one store, as in the split topology) and checks the spec's
// I.4.4 behaviour over REST: POST /score returns {confidence, risk, cost_estimate,
// explanation}.
package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/internal/world"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type score struct {
	Confidence float64 `json:"confidence"`
	Risk       struct {
		Score float64 `json:"score"`
		Level string  `json:"level"`
	} `json:"risk"`
	CostEstimate struct {
		Amount   float64 `json:"amount"`
		Currency string  `json:"currency"`
	} `json:"cost_estimate"`
	Explanation string `json:"explanation"`
	History     struct {
		Scope string `json:"scope"`
	} `json:"history"`
}

func TestScoreASubmittedProposal(t *testing.T) {
	t.Parallel()
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Targets: []string{fabric.Coordinator, fabric.Scorer}, Store: st})
			tok := f.Token(t, "t1", auth.RoleProposer)
			r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok,
				`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","regions":["eu-west","us-east"],"parameters":{"replicas_delta":2}}}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var sub struct {
				Proposal struct{ ID string } `json:"proposal"`
			}
			require.NoError(t, json.Unmarshal(r.Body, &sub))
			// A person scoring by hand sends what the coordinator sends: the manifest and the
			// history counts (none yet); a bare proposal id is refused, saying so.
			bare := fmt.Sprintf(`{"proposal_id":%q}`, sub.Proposal.ID)
			r = f.Do(t, http.MethodPost, fabric.Scorer, "/score", tok, bare)
			require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
			require.Contains(t, string(r.Body), "manifest and history are required")
			body := fmt.Sprintf(`{"proposal_id":%q,"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX",`+
				`"regions":["eu-west","us-east"],"parameters":{"replicas_delta":2}},"history":{}}`, sub.Proposal.ID)

			r = f.Do(t, http.MethodPost, fabric.Scorer, "/score", tok, body)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var got score
			require.NoError(t, json.Unmarshal(r.Body, &got))
			require.GreaterOrEqual(t, got.Confidence, 0.0)
			require.LessOrEqual(t, got.Confidence, 1.0)
			require.Contains(t, []string{"low", "medium", "high"}, got.Risk.Level)
			require.Equal(t, "none", got.History.Scope)
			require.Equal(t, "USD", got.CostEstimate.Currency)
			// The simulated world seeded both regions at submission; +2 replicas in each.
			want := 0.0
			for _, region := range []string{"eu-west", "us-east"} {
				unit := world.InitialState("t1", region, "serviceX")["cost_per_replica_hour"].(float64)
				want += math.Round(2*unit*730*100) / 100
			}
			require.InDelta(t, want, got.CostEstimate.Amount, 1e-9)
			require.Contains(t, got.Explanation, fmt.Sprintf("Confidence is %.2f.", got.Confidence))
			require.Contains(t, got.Explanation, "across 2 regions")

			again := f.Do(t, http.MethodPost, fabric.Scorer, "/score", tok, body)
			require.Equal(t, string(r.Body), string(again.Body), "deterministic")

			require.Equal(t, http.StatusForbidden, f.Do(t, http.MethodPost, fabric.Scorer, "/score", f.Token(t, "t2", auth.RoleProposer), body).Status,
				"another tenant's request")
			require.Equal(t, http.StatusBadRequest, f.Do(t, http.MethodPost, fabric.Scorer, "/score", tok, `{"proposal_id":"p1"}`).Status)
			require.Equal(t, http.StatusBadRequest, f.Do(t, http.MethodPost, fabric.Scorer, "/score", tok, `{}`).Status)
			require.Equal(t, http.StatusUnauthorized, f.Do(t, http.MethodPost, fabric.Scorer, "/score", "", body).Status)
		})
	}
}
