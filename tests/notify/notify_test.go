// Package notify is the end-to-end suite of the hil-gateway's approval notifications:
// the whole fabric (in-process, or as a child process that is SIGKILLed) sends its
// requests, reminders and escalations to a real SMTP server (mailpit) and to local
// servers playing Slack's Web API and Telegram's Bot API, and chat votes come back
// through the gateway's signed callbacks.
package notify

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// The secrets the chat channels read from the environment (hil.*.token_env and the
// like); set once for the whole package, so tests may run in parallel.
const (
	nfSlackTokenEnv    = "FABRIC_NOTIFYE2E_SLACK_TOKEN"
	nfSlackSecretEnv   = "FABRIC_NOTIFYE2E_SLACK_SIGNING_SECRET"
	nfTelegramTokenEnv = "FABRIC_NOTIFYE2E_TELEGRAM_TOKEN"
	nfTelegramHookEnv  = "FABRIC_NOTIFYE2E_TELEGRAM_WEBHOOK_SECRET"

	nfSlackToken    = "xoxb-notife2e-token"
	nfSlackSecret   = "notife2e-signing-secret"
	nfTelegramToken = "987654321:AAnotife2e-token_abcdef"
	nfTelegramHook  = "notife2e-webhook_secret"
)

func TestMain(m *testing.M) {
	for k, v := range map[string]string{
		nfSlackTokenEnv: nfSlackToken, nfSlackSecretEnv: nfSlackSecret,
		nfTelegramTokenEnv: nfTelegramToken, nfTelegramHookEnv: nfTelegramHook,
	} {
		if err := os.Setenv(k, v); err != nil {
			panic(err)
		}
	}
	pgtest.Main(m)
}

// nfPolicy makes every change high impact and asks for one sre AND one manager, with
// the given expiry and reminder (as tests/integration's approvalPolicy).
const nfPolicy = `
version: 1
defaults:
  quorum: majority
  impact_rules:
    - {name: everything, when: "true", impact: high, reason: "every change is high impact here"}
  approval:
    sets:
      - rules:
          - {name: sre, approve: 1, deny: 1, filter: {roles: [approver], groups: [sre]}}
      - rules:
          - {name: manager, approve: 1, filter: {roles: [approver], groups: [manager]}}
    expires_after: %s
    reminder_before: %s
`

// nfWritePolicy writes the instant regions and nfPolicy into dir and returns their paths.
func nfWritePolicy(t testing.TB, dir, expires, reminder string) (regions, pol string) {
	t.Helper()
	regions, pol = filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(fabrictest.InstantRegions), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte(fmt.Sprintf(nfPolicy, expires, reminder)), 0o600))
	return regions, pol
}

// nfEachStore runs scenario on an all-in-one fabric on SQLite and on Postgres, in
// parallel.
func nfEachStore(t *testing.T, scenario func(t *testing.T, st fabrictest.Store)) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			scenario(t, st)
		})
	}
}

// nfStart starts an all-in-one fabric on st with the approval policy and hil set by hook.
func nfStart(t *testing.T, st fabrictest.Store, expires, reminder string, hook func(c *config.Config)) *fabrictest.Fabric {
	t.Helper()
	regions, pol := nfWritePolicy(t, t.TempDir(), expires, reminder)
	return fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st, Configure: func(c *config.Config) {
		c.RegionsFile, c.PolicyFile = regions, pol
		hook(c)
	}})
}

// nfProposal is the part of a proposal these tests read.
type nfProposal struct {
	ID        string   `json:"id"`
	TenantID  string   `json:"tenant_id"`
	Status    string   `json:"status"`
	Impact    string   `json:"impact"`
	Reason    string   `json:"reason"`
	Approvers []string `json:"approvers"`
	Approvals []struct {
		Approver    string `json:"approver"`
		Decision    string `json:"decision"`
		Channel     string `json:"channel"`
		MFAMethod   string `json:"mfa_method"`
		MFAVerified bool   `json:"mfa_verified"`
	} `json:"approvals"`
}

// nfSubmit posts a proposal for tenant t1 with tok and returns it.
func nfSubmit(t testing.TB, f *fabrictest.Fabric, tok, manifest string) nfProposal {
	t.Helper()
	r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, `{"tenant_id":"t1","manifest":`+manifest+`}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Proposal nfProposal }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.NotEmpty(t, out.Proposal.ID)
	return out.Proposal
}

// nfGet reads a proposal.
func nfGet(t testing.TB, f *fabrictest.Fabric, tok, id string) nfProposal {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+id, tok, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Proposal nfProposal }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	return out.Proposal
}

// nfAwait polls a proposal until its status is want.
func nfAwait(t testing.TB, f *fabrictest.Fabric, tok, id, want string) nfProposal {
	t.Helper()
	var p nfProposal
	require.Eventually(t, func() bool {
		p = nfGet(t, f, tok, id)
		return p.Status == want
	}, 20*time.Second, 25*time.Millisecond, "proposal %s never reached %s (last %s: %s)", id, want, p.Status, p.Reason)
	return p
}

// nfEnrol mints subject's approver token with groups and enrols it for TOTP; it
// returns the TOTP secret.
func nfEnrol(t testing.TB, f *fabrictest.Fabric, subject, tenant string, groups ...string) string {
	t.Helper()
	tok := f.TokenWithGroups(t, subject, tenant, groups, auth.RoleApprover)
	r := f.Do(t, http.MethodPost, fabric.HIL, "/mfa/enroll", tok, `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct {
		OtpauthURI string `json:"otpauth_uri"`
		QRPNG      string `json:"qr_png"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	_, err := base64.StdEncoding.DecodeString(out.QRPNG)
	require.NoError(t, err)
	key, err := otp.NewKeyFromURL(out.OtpauthURI)
	require.NoError(t, err)
	return key.Secret()
}

// nfCode is the TOTP code of secret at.
func nfCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

// nfLink is the approval page link the gateway puts in notifications for id (the
// default public_url: the hil-gateway's HTTP address + /ui).
func nfLink(f *fabrictest.Fabric, id string) string {
	return "http://" + f.Cfg.Services[fabric.HIL].HTTPAddr + "/ui/p/" + id
}
