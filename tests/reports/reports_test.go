// Package reports generates the spec's evidence files from a real run (issue 13, part
// 4): it runs the compliance precheck, starts the fabric (cmd/fabric, all in one,
// embedded store, simulation mode), makes the spec's verification calls against it,
// runs each task's tests with `go test -json`, and writes, through internal/reports,
//
//	reports/I.4.<n>_<short>.md, reports/logs/I.4.<n>.log, reports/logs/I.4_end2end.log,
//	reports/I.4.*_*.json (the verification outputs), reports/PhaseI.4_Snapshot.json and
//	reports/PhaseI.4_final_summary.md
//
// then checks that every file the spec lists is there, that the JSON parses, that the
// matrices cite tests that ran, and that no token, key or personal data is in any file.
//
// `make reports` (FABRIC_REPORTS_DIR=reports) runs every test of each task's packages;
// `go test ./...` runs the same generator into a temporary folder and only lists the
// tests the matrices cite (`go test -list`: the same CI run executes them), so CI
// proves the generator and the matrices without running the suite twice.
package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/modroot"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/reports"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

const module = "github.com/decision-fabric/fabric"

// specPost is the spec's body for POST /proposals, as written (I.4.1).
const specPost = `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}`

// lowManifest is one region, one more replica: low impact under the default policy.
const lowManifest = `{"action":"scale","target":"serviceX","regions":["eu-west"],"parameters":{"replicas_delta":1}}`

const lowImpact = `{"tenant_id":"t1","manifest":` + lowManifest + `}`

// highImpact touches three regions: the default policy's wide-blast-radius rule makes
// it high impact, so it waits for an approver (I.4.5) and is dry-run (I.4.7).
const highImpact = `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceY",` +
	`"regions":["eu-west","eu-central","us-east"],"parameters":{"replicas_delta":2}}}`

func TestReports(t *testing.T) {
	root, err := modroot.Find()
	require.NoError(t, err)
	out, mode := os.Getenv("FABRIC_REPORTS_DIR"), "full"
	if out == "" {
		out, mode = t.TempDir(), "listed"
	} else if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	require.NoError(t, os.MkdirAll(filepath.Join(out, "logs"), 0o755))
	bin := fabrictest.Build(t, t.TempDir())

	in := reports.Input{Module: module, GeneratedAt: time.Now(), Mode: mode,
		Tests: map[string]reports.TestRun{}, Calls: map[string]reports.Call{}}
	in.Commit, in.Branch, in.Dirty = gitState(t, root)

	// 1. The precheck, with this machine's environment; BLOCK stops the phase.
	in.Precheck = precheck(t, bin, root, out)

	// 2. The fabric and the spec's verification calls.
	secrets := verify(t, bin, root, &in)

	// 3. Each task's tests, then the end-to-end suite.
	for _, task := range reports.Tasks {
		in.Tests[task.ID] = goTest(t, root, filepath.Join(out, "logs", task.Log), mode, task.Packages, task.Cited())
	}
	in.Tests["end2end"] = goTest(t, root, filepath.Join(out, "logs", reports.EndToEnd.Log), mode, reports.EndToEnd.Packages, reports.EndToEnd.Cited)

	// 4. The reports.
	files := map[string][]byte{}
	for _, task := range reports.Tasks {
		files[task.Report()] = []byte(reports.RenderTask(in, task))
	}
	files["PhaseI.4_final_summary.md"] = []byte(reports.RenderSummary(in))
	for name, c := range in.Calls {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		require.NoError(t, enc.Encode(c))
		files[name] = b.Bytes()
	}
	for name, b := range files {
		require.NoError(t, os.WriteFile(filepath.Join(out, name), b, 0o644))
	}
	for _, name := range reports.Files() {
		if _, ok := files[name]; !ok && name != "PhaseI.4_Snapshot.json" {
			if b, err := os.ReadFile(filepath.Join(out, name)); err == nil {
				files[name] = b // the precheck's and the logs, for their digests
			}
		}
	}
	snap, err := reports.Snapshot(in, files)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(out, "PhaseI.4_Snapshot.json"), append(snap, '\n'), 0o644))
	t.Logf("reports written to %s (%s)", out, mode)

	// 5. What the spec lists is there, parses, cites tests that ran, and holds no secret.
	checkFiles(t, in, out, secrets)
}

func gitState(t *testing.T, root string) (commit, branch string, dirty bool) {
	t.Helper()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		b, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	commit, branch = git("rev-parse", "HEAD"), git("rev-parse", "--abbrev-ref", "HEAD")
	if commit == "" {
		commit, branch = "unknown (not a git checkout)", "unknown"
	}
	return commit, branch, git("status", "--porcelain", "--untracked-files=no") != ""
}

// precheck runs `fabric precheck` into out and reads its decision.
func precheck(t *testing.T, bin, root, out string) reports.Precheck {
	t.Helper()
	cmd := exec.Command(bin, "precheck", "-config", filepath.Join(root, "fabric.dev.yaml"), "-reports-dir", out)
	cmd.Dir = t.TempDir() // the configuration's relative data_dir lands here
	b, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code == 2 {
		block := "Phase I.4 stopped: the compliance precheck decided BLOCK.\n\n" + redact.String(string(b))
		require.NoError(t, os.WriteFile(filepath.Join(out, "PhaseI.4_block.txt"), []byte(block), 0o644))
		t.Fatalf("the precheck decided BLOCK: reports/PhaseI.4_block.txt\n%s", b)
	}
	require.NoError(t, err, "precheck: %s", b)
	raw, err := os.ReadFile(filepath.Join(out, "I.4_precheck.json"))
	require.NoError(t, err)
	p, err := reports.ParsePrecheck(raw)
	require.NoError(t, err)
	return p
}

// caller makes the verification calls and keeps what they answered.
type caller struct {
	t      *testing.T
	client *http.Client
	f      *fabrictest.Process
	in     *reports.Input
}

// do sends one request; the token goes on the wire only, auth describes it.
func (c *caller) do(method, service, path, token, auth, body string) reports.Call {
	c.t.Helper()
	url := c.f.URL(service) + path
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	require.NoError(c.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	require.NoError(c.t, err)
	if !json.Valid(raw) {
		raw, err = json.Marshal(string(raw))
		require.NoError(c.t, err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") == nil {
		raw = pretty.Bytes()
	}
	return reports.Call{Method: method, URL: path, Body: body, Auth: auth, Status: resp.StatusCode, Response: raw}
}

// save records call as the output file, with the spec's command and a note.
func (c *caller) save(file string, call reports.Call, note string) {
	for _, task := range reports.Tasks {
		for _, v := range task.Verify {
			if v.File == file {
				call.Spec = v.Spec
			}
		}
	}
	require.NotEmpty(c.t, call.Spec, "%s is not a verification the spec lists", file)
	call.Note = note
	c.in.Calls[file] = call
}

type proposal struct {
	Proposal struct {
		ID              string `json:"id"`
		Status          string `json:"status"`
		PreStateSHA256  string `json:"pre_state_sha256"`
		PostStateSHA256 string `json:"post_state_sha256"`
		ManifestSHA256  string `json:"manifest_sha256"`
	} `json:"proposal"`
}

func (c *caller) proposal(call reports.Call) proposal {
	c.t.Helper()
	require.Equal(c.t, http.StatusOK, call.Status, string(call.Response))
	var p proposal
	require.NoError(c.t, json.Unmarshal(call.Response, &p))
	require.NotEmpty(c.t, p.Proposal.ID)
	return p
}

// await long-polls GET /proposals/{id} until its status is one of want.
func (c *caller) await(token, id string, want ...string) proposal {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p := c.proposal(c.do(http.MethodGet, fabric.Coordinator, "/proposals/"+id+"?wait_ms=2000", token, "", ""))
		for _, w := range want {
			if p.Proposal.Status == "PROPOSAL_STATUS_"+w {
				return p
			}
		}
		require.True(c.t, time.Now().Before(deadline), "proposal %s is %s, waiting for %v", id, p.Proposal.Status, want)
	}
}

// verify starts the fabric and makes the spec's verification calls; it returns the
// tokens used (no file may contain them).
func verify(t *testing.T, bin, root string, in *reports.Input) []string {
	t.Helper()
	pol, err := os.ReadFile(filepath.Join(root, "policies", "default.yaml"))
	require.NoError(t, err)
	f := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{Regions: fabrictest.InstantRegions, Policy: string(pol), Name: "fabric"})
	f.Start()
	c := &caller{t: t, client: &http.Client{Timeout: 30 * time.Second}, f: f, in: in}
	proposer := f.TokenFor("agent-reports", "t1", nil, auth.RoleProposer)
	approver := f.TokenFor("approver-reports", "t1", []string{"sre"}, auth.RoleApprover)
	auditor := f.TokenFor("auditor-reports", "t1", nil, auth.RoleAuditor)
	const (
		asProposer = "a bearer JWT of tenant t1, role proposer"
		asApprover = "a bearer JWT of tenant t1, role approver"
		asAuditor  = "a bearer JWT of tenant t1, role auditor"
		withToken  = "The spec's command carries no token; the fabric requires one (P5: the JWT's tenant claim), so it was sent with one. "
	)

	// I.4.1: health, the spec's proposal as written, and a low-impact one followed
	// through negotiation and scoring to its enactment (pre/post snapshots).
	c.save("I.4.1_health.json", c.do(http.MethodGet, fabric.Coordinator, "/health", "", "", ""), "")
	post := c.do(http.MethodPost, fabric.Coordinator, "/proposals", proposer, asProposer, specPost)
	spec := c.proposal(post).Proposal.ID
	low := c.proposal(c.do(http.MethodPost, fabric.Coordinator, "/proposals", proposer, asProposer, lowImpact)).Proposal.ID
	c.await(proposer, low, "SCORED")
	enact := c.do(http.MethodPost, fabric.Coordinator, "/proposals/"+low+"/enact", proposer, asProposer, `{}`)
	require.Equal(t, http.StatusOK, enact.Status, string(enact.Response))
	lowEnd := c.await(proposer, low, "ENACTED")
	specNow := c.do(http.MethodGet, fabric.Coordinator, "/proposals/"+spec, proposer, asProposer, "")
	var sp struct {
		Proposal struct {
			Status string
			Impact string
			Policy struct{ Reasons []string }
		}
	}
	require.NoError(t, json.Unmarshal(specNow.Response, &sp))
	first := ""
	if len(sp.Proposal.Policy.Reasons) > 0 {
		first = sp.Proposal.Policy.Reasons[0]
	}
	c.save("I.4.1_post.json", post, fmt.Sprintf("%sThe body is the spec's, as written; when the other calls were made it was %s at %s impact, the policy's first reason: %q. "+
		"The decision followed to enactment for the reports is %s: %s.", withToken, sp.Proposal.Status, sp.Proposal.Impact, first, low, lowImpact))

	// I.4.2: the spec's composition.
	c.save("I.4.2_compose.json", c.do(http.MethodPost, fabric.Composer, "/compose", proposer, asProposer, `{"context":"reduce cost","tenant_id":"t1"}`),
		withToken+"The body is the spec's, as written.")

	// I.4.3: the negotiation of the spec's proposal (idempotent per proposal: the one the
	// coordinator started is answered, nothing new is negotiated).
	bareNeg := c.do(http.MethodPost, fabric.Negotiator, "/negotiate", proposer, asProposer, fmt.Sprintf(`{"proposal_id":%q}`, low))
	c.save("I.4.3_negotiate.json", c.do(http.MethodPost, fabric.Negotiator, "/negotiate", proposer, asProposer,
		fmt.Sprintf(`{"proposal_id":%q,"manifest":%s}`, low, lowManifest)),
		fmt.Sprintf("%s\"p1\" is the low-impact proposal %s, whose negotiation the coordinator started: StartNegotiation is idempotent per "+
			"proposal, so this answers that negotiation and negotiates nothing new. As written (a bare proposal id) the negotiator answers %d: %s; "+
			"so the call carries the manifest, as the coordinator sends it.", withToken, low, bareNeg.Status, compact(bareNeg.Response)))

	// I.4.4: the score, with the inputs the scorer needs (a bare proposal id is refused,
	// saying so: the scorer never invents inputs).
	bare := c.do(http.MethodPost, fabric.Scorer, "/score", proposer, asProposer, fmt.Sprintf(`{"proposal_id":%q}`, low))
	score := c.do(http.MethodPost, fabric.Scorer, "/score", proposer, asProposer, fmt.Sprintf(
		`{"proposal_id":%q,"tenant_id":"t1","manifest":%s,"history":{}}`, low, lowManifest))
	c.save("I.4.4_score.json", score, fmt.Sprintf("%s\"p1\" is the low-impact proposal "+low+". As written (a bare proposal id) the scorer answers %d: %s; "+
		"so the call carries the manifest and history counts, as the coordinator sends them.", withToken, bare.Status, compact(bare.Response)))

	// I.4.5: a high-impact proposal waits for an approver.
	hi := c.proposal(c.do(http.MethodPost, fabric.Coordinator, "/proposals", proposer, asProposer, highImpact)).Proposal.ID
	c.await(proposer, hi, "PENDING_APPROVAL")
	c.save("I.4.5_pending.json", c.do(http.MethodGet, fabric.HIL, "/pending/t1", approver, asApprover, ""),
		withToken+"The token is an approver's of t1: only approvers list pending approvals. The list holds the high-impact proposal "+hi+" (three regions).")

	// I.4.7: the dry run of that proposal, before anyone approved it.
	c.save("I.4.7_canary.json", c.do(http.MethodPost, fabric.Canary, "/canary/run", proposer, asProposer, fmt.Sprintf(`{"proposal_id":%q,"dry_run":true}`, hi)),
		withToken+"\"p1\" is the high-impact proposal "+hi+", waiting for approval: the dry run says who must approve and changes nothing.")

	// The approver enrols TOTP and approves; the proposal is enacted with its snapshots.
	enrol := c.do(http.MethodPost, fabric.HIL, "/mfa/enroll", approver, asApprover, `{}`)
	require.Equal(t, http.StatusOK, enrol.Status, string(enrol.Response))
	var e struct {
		OtpauthURI string `json:"otpauth_uri"`
	}
	require.NoError(t, json.Unmarshal(enrol.Response, &e))
	key, err := otp.NewKeyFromURL(e.OtpauthURI)
	require.NoError(t, err)
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	require.NoError(t, err)
	vote := c.do(http.MethodPost, fabric.HIL, "/approve/"+hi, approver, asApprover,
		fmt.Sprintf(`{"decision":"approve","reason":"reviewed for the phase report","mfa":{"totp":%q}}`, code))
	require.Equal(t, http.StatusOK, vote.Status, string(vote.Response))
	c.await(proposer, hi, "APPROVED")
	for _, body := range []string{`{"dry_run":true}`, `{}`} { // P3: a passed dry run, then enactment
		r := c.do(http.MethodPost, fabric.Coordinator, "/proposals/"+hi+"/enact", proposer, asProposer, body)
		require.Equal(t, http.StatusOK, r.Status, "enact %s: %s", body, r.Response)
	}
	hiEnd := c.await(proposer, hi, "ENACTED")

	// I.4.6: the audit trail of the spec's proposal; the digests of both for the reports.
	c.save("I.4.6_audit.json", c.do(http.MethodGet, fabric.Auditor, "/audit/"+low, auditor, asAuditor, ""),
		withToken+"The token is an auditor's of t1. \"p1\" is the low-impact proposal "+low+", enacted.")
	for _, p := range []proposal{lowEnd, hiEnd} {
		id := p.Proposal.ID
		in.Audit = append(in.Audit,
			reports.AuditRef{ProposalID: id, What: "manifest (" + p.Proposal.Status + ")", SHA256: p.Proposal.ManifestSHA256},
			reports.AuditRef{ProposalID: id, What: "pre-state snapshot", SHA256: p.Proposal.PreStateSHA256})
		if p.Proposal.PostStateSHA256 != "" {
			in.Audit = append(in.Audit, reports.AuditRef{ProposalID: id, What: "post-state snapshot", SHA256: p.Proposal.PostStateSHA256})
		}
		trail := c.do(http.MethodGet, fabric.Auditor, "/audit/"+id, auditor, asAuditor, "")
		require.Equal(t, http.StatusOK, trail.Status, string(trail.Response))
		var tr struct {
			Entries []struct {
				Index     json.Number `json:"index"`
				Event     string      `json:"event"`
				EntryHash string      `json:"entry_hash"`
			} `json:"entries"`
		}
		require.NoError(t, json.Unmarshal(trail.Response, &tr))
		require.NotEmpty(t, tr.Entries, "the audit log holds %s's entries", id)
		for _, en := range tr.Entries {
			in.Audit = append(in.Audit, reports.AuditRef{ProposalID: id, What: fmt.Sprintf("audit entry %s %s", en.Index, en.Event), SHA256: en.EntryHash})
		}
	}

	// The log verifies with the public keys alone.
	code2, outText := f.AuditVerify()
	lines := strings.Split(strings.TrimSpace(outText), "\n")
	in.AuditVerify = fmt.Sprintf("exit %d, %q", code2, lines[len(lines)-1])
	if code2 != 0 {
		in.Problems = append(in.Problems, "fabric audit-verify failed on the run's store: "+in.AuditVerify)
	}
	return []string{proposer, approver, auditor, key.Secret()}
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// goTest runs `go test -json` over packages and the cited tests (full), or lists the
// cited tests (listed); it writes the readable log to logPath (redacted) and returns the results.
func goTest(t *testing.T, root, logPath, mode string, packages []string, cited []reports.TestRef) reports.TestRun {
	t.Helper()
	type invocation struct {
		pkgs []string
		run  string
	}
	var invs []invocation
	byDir := map[string][]string{}
	for _, r := range cited {
		byDir[r.Dir] = append(byDir[r.Dir], r.Name)
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	list := mode != "full"
	if !list {
		invs = append(invs, invocation{pkgs: packages})
	}
	for _, d := range dirs {
		pkg := "./" + d
		if !list && coveredBy(pkg, packages) {
			continue // ran in full already
		}
		invs = append(invs, invocation{pkgs: []string{pkg}, run: "^(" + strings.Join(byDir[d], "|") + ")$"})
	}
	run := reports.NewRun()
	var commands []string
	for _, inv := range invs {
		args := []string{"test", "-json", "-count=1", "-timeout", "20m"}
		switch {
		case list:
			args = append(args, "-list", inv.run)
		case inv.run != "":
			args = append(args, "-run", inv.run)
		}
		args = append(args, inv.pkgs...)
		commands = append(commands, "go "+strings.Join(args, " "))
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.Env = append(childEnv(), "FABRIC_TEST_LOGS=0")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run() // a failing test is reported, not fatal here
		cancel()
		if list {
			require.NoError(t, run.AddList(&stdout))
		} else {
			require.NoError(t, run.Add(&stdout))
		}
		if stderr.Len() > 0 {
			run.Text.WriteString(stderr.String())
		}
		if err != nil && ctx.Err() != nil {
			t.Errorf("%s timed out", commands[len(commands)-1])
		}
	}
	head := "# " + strings.Join(commands, "\n# ") + "\n"
	require.NoError(t, os.WriteFile(logPath, []byte(head+redact.String(run.Text.String())), 0o644))
	return reports.TestRun{Commands: commands, Run: run}
}

// coveredBy reports whether pkg ("./dir") is matched by one of the patterns ("./dir"
// or "./dir/...").
func coveredBy(pkg string, patterns []string) bool {
	for _, p := range patterns {
		base, tree := strings.CutSuffix(p, "/...")
		if pkg == base || (tree && strings.HasPrefix(pkg, base+"/")) {
			return true
		}
	}
	return false
}

// childEnv is this process's environment without the generator's own variable (the
// tests it runs must not write reports).
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FABRIC_REPORTS_DIR=") {
			out = append(out, kv)
		}
	}
	return out
}

var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`)

// checkFiles is the acceptance: every file the spec lists, parseable, citing tests that
// ran, and nothing secret or personal in any of them.
func checkFiles(t *testing.T, in reports.Input, out string, secrets []string) {
	t.Helper()
	for _, name := range reports.Files() {
		b, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err, "the spec lists reports/%s", name)
		require.NotEmpty(t, b, name)
		if strings.HasSuffix(name, ".json") {
			require.True(t, json.Valid(b), "%s is not JSON", name)
		}
		if strings.HasSuffix(name, ".md") && name != "PhaseI.4_final_summary.md" {
			require.Contains(t, string(b), in.Commit, "%s names the commit", name)
			require.Contains(t, string(b), "SIMULATION_MODE=", name)
			require.Contains(t, string(b), "| P7 ", "%s has the matrix", name)
		}
		for _, s := range secrets {
			require.NotContains(t, string(b), s, "%s holds a token or secret", name)
		}
		require.False(t, jwtLike.Match(b), "%s holds something that looks like a JWT", name)
		require.NotContains(t, string(b), "PRIVATE KEY", name)
		for _, f := range redact.Find(string(b)) {
			lo, hi := max(0, f.Start-40), min(len(b), f.End+10)
			t.Errorf("%s holds what the redactor finds %s: …%s…", name, f.Kind, b[lo:hi])
		}
	}
	for _, task := range reports.Tasks {
		tr := in.Tests[task.ID]
		require.NotNil(t, tr.Run, task.ID)
		for _, ref := range task.Cited() {
			require.NotEqual(t, reports.NotRun, tr.Run.Outcome(module, ref), "%s cites %s (%s), which did not run", task.ID, ref.Name, ref.Dir)
		}
		for _, v := range task.Verify {
			require.Equal(t, http.StatusOK, in.Calls[v.File].Status, "%s: %s", v.File, in.Calls[v.File].Response)
		}
	}
	require.Contains(t, in.AuditVerify, "exit 0")
}
