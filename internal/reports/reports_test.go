package reports

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/modroot"
)

// topLevelTests are the Test functions declared in dir's _test.go files.
func topLevelTests(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	require.NoError(t, err)
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Type.Params.NumFields() != 1 {
				continue
			}
			out[fn.Name.Name] = true
		}
	}
	return out
}

// Every test a matrix cites exists: a renamed or deleted test cannot leave a policy
// backed by nothing (the run would also report it NOT RUN, so BLOCKED).
func TestCitedTestsExist(t *testing.T) {
	root, err := modroot.Find()
	require.NoError(t, err)
	declared := map[string]map[string]bool{}
	check := func(where string, ref TestRef) {
		if declared[ref.Dir] == nil {
			declared[ref.Dir] = topLevelTests(t, filepath.Join(root, ref.Dir))
		}
		require.True(t, declared[ref.Dir][ref.Name], "%s cites %s in %s, which does not declare it", where, ref.Name, ref.Dir)
	}
	for _, task := range Tasks {
		require.Len(t, task.Policies, len(Policies), "%s: every policy has its row", task.ID)
		for _, p := range Policies {
			c, ok := task.Policies[p.ID]
			require.True(t, ok, "%s has no %s row", task.ID, p.ID)
			require.NotEmpty(t, c.Tests, "%s %s cites no test", task.ID, p.ID)
			require.NotEmpty(t, c.Shows, "%s %s says nothing of what it shows", task.ID, p.ID)
			for _, ref := range c.Tests {
				check(task.ID+" "+p.ID, ref)
			}
		}
		for _, pkg := range task.Packages {
			_, err := os.Stat(filepath.Join(root, strings.TrimSuffix(pkg, "/...")))
			require.NoError(t, err, "%s: package %s", task.ID, pkg)
		}
	}
	for _, ref := range EndToEnd.Cited {
		check("end to end", ref)
	}
	// The check itself bites: a name no folder declares is caught.
	require.False(t, topLevelTests(t, filepath.Join(root, "internal/reports"))["TestNoSuchTest"])
}

// Files are exactly what the spec lists under /reports/ (its per-task reports, logs and
// verification outputs, the precheck's, the snapshot and the final summary).
func TestFilesAreTheSpecs(t *testing.T) {
	spec := []string{
		"I.4.1_decision_coordinator.md", "I.4.2_proposal_composer.md", "I.4.3_federated_negotiator.md",
		"I.4.4_confidence_scorer.md", "I.4.5_hil_gateway.md", "I.4.6_decision_auditor.md", "I.4.7_sim_canary.md",
		"logs/I.4.1.log", "logs/I.4.2.log", "logs/I.4.3.log", "logs/I.4.4.log", "logs/I.4.5.log", "logs/I.4.6.log", "logs/I.4.7.log",
		"logs/I.4_end2end.log", "logs/I.4_precheck.log", "I.4_precheck.json",
		"I.4.1_post.json", "I.4.1_health.json", "I.4.2_compose.json", "I.4.3_negotiate.json", "I.4.4_score.json",
		"I.4.5_pending.json", "I.4.6_audit.json", "I.4.7_canary.json",
		"PhaseI.4_Snapshot.json", "PhaseI.4_final_summary.md",
	}
	require.ElementsMatch(t, spec, Files())
}

const module = "github.com/decision-fabric/fabric"

// events is a go test -json stream: coordinator's TestCheckPersonalData passes,
// TestVerifyManifestInProduction fails (with output), a subtest passes.
func events(t *testing.T) string {
	t.Helper()
	pkg := module + "/" + coordinator
	lines := []map[string]any{
		{"Action": "run", "Package": pkg, "Test": "TestCheckPersonalData"},
		{"Action": "output", "Package": pkg, "Test": "TestCheckPersonalData", "Output": "=== RUN   TestCheckPersonalData\n"},
		{"Action": "pass", "Package": pkg, "Test": "TestCheckPersonalData/email", "Elapsed": 0.01},
		{"Action": "pass", "Package": pkg, "Test": "TestCheckPersonalData", "Elapsed": 0.02},
		{"Action": "output", "Package": pkg, "Test": "TestVerifyManifestInProduction", "Output": "    trust_test.go:42: expected 403, got 200\n"},
		{"Action": "fail", "Package": pkg, "Test": "TestVerifyManifestInProduction", "Elapsed": 1.5},
		{"Action": "fail", "Package": pkg, "Elapsed": 2},
	}
	var b strings.Builder
	for _, l := range lines {
		j, err := json.Marshal(l)
		require.NoError(t, err)
		b.Write(j)
		b.WriteByte('\n')
	}
	b.WriteString("# a line of the go command's own\n")
	return b.String()
}

func TestRunCountsAndMatrix(t *testing.T) {
	run := NewRun()
	require.NoError(t, run.Add(strings.NewReader(events(t))))
	c := run.Counts()
	require.Equal(t, 2, c.Passed)
	require.Equal(t, 1, c.TopPassed)
	require.Equal(t, 1, c.Failed)
	require.Equal(t, 1, c.PackageFailures)
	require.Equal(t, []string{module + "/" + coordinator + " TestVerifyManifestInProduction"}, run.Failures())
	require.Equal(t, []string{"    trust_test.go:42: expected 403, got 200"}, run.Excerpt(module+"/"+coordinator, "TestVerifyManifestInProduction", 5))
	require.Contains(t, run.Text.String(), "a line of the go command's own")

	rows := Matrix(module, Tasks[0], run)
	require.Len(t, rows, 7)
	// P1 cites one passing test and one not run: BLOCKED, never PASS on half the evidence.
	require.Equal(t, "P1", rows[0].Policy.ID)
	require.Equal(t, "BLOCKED", rows[0].Status)
	require.Equal(t, Pass, rows[0].Tests[0].Outcome)
	require.Equal(t, NotRun, rows[0].Tests[1].Outcome)
	// P2's test failed.
	require.Equal(t, "BLOCKED", rows[1].Status)
	require.Equal(t, Fail, rows[1].Tests[0].Outcome)

	// Every cited test passing makes every row PASS.
	all := NewRun()
	for _, ref := range Tasks[0].Cited() {
		j, err := json.Marshal(map[string]any{"Action": "pass", "Package": module + "/" + ref.Dir, "Test": ref.Name})
		require.NoError(t, err)
		require.NoError(t, all.Add(strings.NewReader(string(j)+"\n")))
	}
	for _, r := range Matrix(module, Tasks[0], all) {
		require.Equal(t, "PASS", r.Status, r.Policy.ID)
	}
}

func TestRenderedReportCarriesTheRun(t *testing.T) {
	run := NewRun()
	require.NoError(t, run.Add(strings.NewReader(events(t))))
	pre, err := ParsePrecheck([]byte(`{"decision":"PROCEED_SIMULATION","simulation_mode":true,"missing":["KAFKA_URL"],
		"checks":[{"name":"kafka","env_var":"KAFKA_URL","critical":false,"status":"missing","detail":"KAFKA_URL is not set"}]}`))
	require.NoError(t, err)
	in := Input{Module: module, Commit: "0123456789abcdef0123456789abcdef01234567", Branch: "main", GeneratedAt: time.Unix(0, 0),
		Mode: "cited", Precheck: pre, Tests: map[string]TestRun{"I.4.1": {Commands: []string{"go test -json ./x"}, Run: run}},
		Calls: map[string]Call{"I.4.1_post.json": {Method: "POST", URL: "/proposals", Auth: "Bearer <REDACTED>", Status: 200, Response: json.RawMessage(`{"ok":true}`)}},
		Audit: []AuditRef{{ProposalID: "01J", What: "pre-state snapshot", SHA256: strings.Repeat("a", 64)}}}
	md := RenderTask(in, Tasks[0])
	for _, want := range []string{in.Commit, "PROCEED_SIMULATION", "SIMULATION_MODE=true", "| P2 Secrets & Signing | BLOCKED |",
		"TestVerifyManifestInProduction", "expected 403, got 200", "reports/I.4.1_post.json", "**200**", strings.Repeat("a", 64),
		"set KAFKA_URL", "verification I.4.1_health.json was not made"} {
		require.Contains(t, md, want)
	}
	sum := RenderSummary(in)
	require.Contains(t, sum, "I.4.7 Simulation & Canary Runner")
	require.Contains(t, sum, "Manual next steps")
	snap, err := Snapshot(in, map[string][]byte{"a.md": []byte("x")})
	require.NoError(t, err)
	var s struct {
		Commit string
		Tasks  []struct{ Policies map[string]string }
		Files  []struct{ SHA256 string }
	}
	require.NoError(t, json.Unmarshal(snap, &s))
	require.Equal(t, in.Commit, s.Commit)
	require.Len(t, s.Tasks, 7)
	require.Equal(t, "BLOCKED", s.Tasks[0].Policies["P2"])
	require.Equal(t, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", s.Files[0].SHA256)

	_, err = ParsePrecheck([]byte(`{}`))
	require.Error(t, err)
}
