package reports

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Precheck is what the report needs of reports/I.4_precheck.json.
type Precheck struct {
	Decision           string   `json:"decision"`
	SimulationMode     bool     `json:"simulation_mode"`
	Missing            []string `json:"missing"`
	SimulatedProviders []string `json:"simulated_providers"`
	Checks             []struct {
		Name     string `json:"name"`
		EnvVar   string `json:"env_var"`
		Critical bool   `json:"critical"`
		Status   string `json:"status"`
		Detail   string `json:"detail"`
	} `json:"checks"`
}

// ParsePrecheck reads the precheck's report.
func ParsePrecheck(b []byte) (Precheck, error) {
	var p Precheck
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("precheck report: %w", err)
	}
	if p.Decision == "" {
		return p, fmt.Errorf("precheck report: no decision")
	}
	return p, nil
}

// Call is one verification call made against the running fabric, as saved.
type Call struct {
	// Spec is the spec's command, as written.
	Spec string `json:"spec_command"`
	// Method, URL and Body are what was sent; the token is never saved.
	Method string `json:"method"`
	URL    string `json:"url"`
	Body   string `json:"body,omitempty"`
	// Auth describes the credential sent ("a bearer JWT of tenant t1, role proposer");
	// the credential itself is never saved.
	Auth string `json:"sent_with,omitempty"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// Response is the answer's body (JSON as is; anything else as a JSON string).
	Response json.RawMessage `json:"response"`
	// Note says how the call differs from the spec's, and why.
	Note string `json:"note,omitempty"`
}

// AuditRef is a SHA-256 the audit log holds for a proposal (no data, only digests).
type AuditRef struct {
	ProposalID string `json:"proposal_id"`
	What       string `json:"what"`
	SHA256     string `json:"sha256"`
}

// TestRun is one task's tests as run.
type TestRun struct {
	Commands []string
	Run      *Run
}

// Input is everything a report set is written from.
type Input struct {
	Module      string
	Commit      string
	Branch      string
	Dirty       bool
	GeneratedAt time.Time
	// Mode is "full" (every test of each task's packages) or "cited" (only the tests
	// the matrices cite: the CI check of the generator).
	Mode     string
	Precheck Precheck
	// Tests by task ID, and "end2end".
	Tests map[string]TestRun
	// Calls by output file.
	Calls map[string]Call
	Audit []AuditRef
	// AuditVerify is `fabric audit-verify`'s exit code and last line.
	AuditVerify string
	// Problems met by the run itself (a call that could not be made, ...).
	Problems []string
}

// Row is one policy of a task's matrix.
type Row struct {
	Policy Policy
	Status string // PASS or BLOCKED
	Tests  []Cited
	Shows  string
}

// Cited is one cited test and its outcome in the run.
type Cited struct {
	Ref     TestRef
	Outcome Outcome
}

// Matrix is task's P1–P7 matrix from the run: PASS when every cited test passed.
func Matrix(module string, task Task, run *Run) []Row {
	rows := make([]Row, 0, len(Policies))
	for _, p := range Policies {
		c := task.Policies[p.ID]
		row := Row{Policy: p, Status: "PASS", Shows: c.Shows}
		if len(c.Tests) == 0 {
			row.Status = "BLOCKED"
		}
		for _, ref := range c.Tests {
			o := NotRun
			if run != nil {
				o = run.Outcome(module, ref)
			}
			row.Tests = append(row.Tests, Cited{Ref: ref, Outcome: o})
			if o != Pass {
				row.Status = "BLOCKED"
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// remediation says how to bring a simulated dependency in, by environment variable.
var remediation = map[string]string{
	"POSTGRES_DSN":        "set POSTGRES_DSN to a reachable PostgreSQL (the store migrates itself)",
	"VAULT_ADDR":          "set VAULT_ADDR (and VAULT_TOKEN) with the keys under integrations.vault.*_path (docs/security.md)",
	"COSIGN_KEY_PATH":     "set COSIGN_KEY_PATH to the cosign key that signs manifests and bundles",
	"GLOBAL_REGISTRY_URL": "set GLOBAL_REGISTRY_URL to the region registry (a missing registry BLOCKs production)",
	"FEDERATION_TOKEN":    "set FEDERATION_TOKEN, shared with the region negotiators",
	"REDIS_URL":           "set REDIS_URL to share rate limits and quotas across replicas",
	"KAFKA_URL":           "set KAFKA_URL to publish lifecycle events (docs/events.md)",
	"PROM_URL":            "set PROM_URL for real canary and scorer metrics",
	"NEURAL_FABRIC_URL":   "set NEURAL_FABRIC_URL for the composer's model",
	"QUANTUM_PROVIDER":    "set QUANTUM_PROVIDER (ML-DSA-65 runs locally either way)",
}

// Blockers of a task: the missing infrastructure (the whole phase's), then the task's
// own, each with its remediation.
func Blockers(in Input, task Task) []string {
	return append(infraBlockers(in), taskBlockers(in, task)...)
}

// infraBlockers are the precheck's checks that did not pass: each dependency runs
// simulated.
func infraBlockers(in Input) []string {
	var out []string
	for _, c := range in.Precheck.Checks {
		if c.Status == "ok" {
			continue
		}
		fix := remediation[c.EnvVar]
		if fix == "" {
			fix = "provide " + c.EnvVar
		}
		kind := "optional"
		if c.Critical {
			kind = "critical"
		}
		out = append(out, fmt.Sprintf("%s (%s, %s): %s, so it runs simulated. Remediation: %s.", c.Name, kind, c.Status, c.Detail, fix))
	}
	return out
}

// taskBlockers are a task's failed tests, blocked policies and failed verification
// calls.
func taskBlockers(in Input, task Task) []string {
	var out []string
	tr := in.Tests[task.ID]
	if tr.Run != nil {
		for _, f := range tr.Run.Failures() {
			out = append(out, "test failed: "+f+". Remediation: see the log excerpt above and fix before enactment in production.")
		}
		for _, p := range tr.Run.PackageFailures {
			out = append(out, "package failed outside a test (build or TestMain): "+p+".")
		}
	}
	for _, r := range Matrix(in.Module, task, tr.Run) {
		if r.Status != "PASS" {
			out = append(out, fmt.Sprintf("%s %s is BLOCKED: a cited test did not pass in this run.", r.Policy.ID, r.Policy.Title))
		}
	}
	for _, v := range task.Verify {
		c, ok := in.Calls[v.File]
		switch {
		case !ok:
			out = append(out, "verification "+v.File+" was not made.")
		case c.Status < 200 || c.Status > 299:
			out = append(out, fmt.Sprintf("verification %s answered %d.", v.File, c.Status))
		}
	}
	return out
}

func mark(o Outcome) string {
	if o == Pass {
		return "PASS"
	}
	return "**" + string(o) + "**"
}

// header is the part every report starts with.
func header(b *strings.Builder, in Input, title string) {
	fmt.Fprintf(b, "# %s\n\n", title)
	fmt.Fprintf(b, "_Generated by `make reports` (tests/reports, internal/reports) from a run at %s. Do not edit: run it again._\n\n",
		in.GeneratedAt.UTC().Format(time.RFC3339))
	dirty := ""
	if in.Dirty {
		dirty = " (working tree had uncommitted changes)"
	}
	fmt.Fprintf(b, "- Branch: `%s`, commit `%s`%s\n", in.Branch, in.Commit, dirty)
	fmt.Fprintf(b, "- Precheck: **%s**; `SIMULATION_MODE=%t` (reports/I.4_precheck.json, reports/logs/I.4_precheck.log)\n",
		in.Precheck.Decision, in.Precheck.SimulationMode)
	if len(in.Precheck.SimulatedProviders) > 0 || len(in.Precheck.Missing) > 0 {
		fmt.Fprintf(b, "- Missing: %s; simulated providers: %s\n", list(in.Precheck.Missing), list(in.Precheck.SimulatedProviders))
	}
	fmt.Fprintf(b, "- Test selection: %s\n\n", modeText(in.Mode))
}

func modeText(mode string) string {
	if mode == "full" {
		return "full (every test of each task's packages, and every test the matrix cites)"
	}
	return "listed (the cited tests are listed with `go test -list`, not run: the generator's own check in CI, where the same run executes them; `make reports` runs them)"
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// RenderTask writes task's report.
func RenderTask(in Input, task Task) string {
	var b strings.Builder
	header(&b, in, fmt.Sprintf("%s — %s", task.ID, task.Name))
	tr := in.Tests[task.ID]
	fmt.Fprintf(&b, "Service: `services/%s`. Spec branch name: `prod-feature/%s-%s` (work lands on `%s`).\n\n",
		task.Service, task.ID, strings.ReplaceAll(task.Short, "_", "-"), in.Branch)

	b.WriteString("## Tests\n\n")
	for _, c := range tr.Commands {
		fmt.Fprintf(&b, "    %s\n", c)
	}
	b.WriteString("\n")
	if tr.Run == nil {
		b.WriteString("**Not run.**\n\n")
	} else {
		c := tr.Run.Counts()
		fmt.Fprintf(&b, "| | passed | failed | skipped |\n|---|---|---|---|\n")
		fmt.Fprintf(&b, "| top-level tests | %d | %d | %d |\n", c.TopPassed, c.TopFailed, c.TopSkipped)
		fmt.Fprintf(&b, "| with subtests | %d | %d | %d |\n\n", c.Passed, c.Failed, c.Skipped)
		if c.Listed > 0 {
			fmt.Fprintf(&b, "Listed, not run: %d.\n\n", c.Listed)
		}
		fmt.Fprintf(&b, "Packages: %d; package failures outside tests: %d. Full log: `reports/logs/%s`.\n\n", c.Packages, c.PackageFailures, task.Log)
		if f := tr.Run.Failures(); len(f) > 0 {
			b.WriteString("Failed:\n\n")
			for _, name := range f {
				pkg, test, _ := strings.Cut(name, " ")
				fmt.Fprintf(&b, "- `%s` in `%s`\n\n", test, pkg)
				for _, l := range tr.Run.Excerpt(pkg, test, 15) {
					fmt.Fprintf(&b, "      %s\n", l)
				}
				b.WriteString("\n")
			}
		}
		if s := tr.Run.Slowest(5); len(s) > 0 {
			b.WriteString("Slowest: " + strings.Join(s, "; ") + ".\n\n")
		}
		b.WriteString("Log excerpt (results of the cited tests):\n\n")
		for _, ref := range task.Cited() {
			fmt.Fprintf(&b, "    --- %s: %s (%s)\n", tr.Run.Outcome(in.Module, ref), ref.Name, ref.Dir)
		}
		b.WriteString("\n")
	}

	b.WriteString("## Verification\n\n")
	for _, v := range task.Verify {
		writeCall(&b, v, in.Calls[v.File])
	}

	b.WriteString("## Policy matrix (P1–P7)\n\n")
	b.WriteString("A policy is PASS only when every test cited for it ran and passed in this run.\n\n")
	b.WriteString("| Policy | Status | Evidence (tests) | What they show |\n|---|---|---|---|\n")
	for _, r := range Matrix(in.Module, task, tr.Run) {
		var ts []string
		for _, c := range r.Tests {
			ts = append(ts, fmt.Sprintf("`%s` (%s) %s", c.Ref.Name, c.Ref.Dir, mark(c.Outcome)))
		}
		fmt.Fprintf(&b, "| %s %s | %s | %s | %s |\n", r.Policy.ID, r.Policy.Title, r.Status, strings.Join(ts, "<br>"), r.Shows)
	}
	b.WriteString("\n")

	writeAudit(&b, in)
	writeBlockers(&b, Blockers(in, task))
	return b.String()
}

func writeCall(b *strings.Builder, v Verification, c Call) {
	fmt.Fprintf(b, "`reports/%s`\n\n    %s\n\n", v.File, v.Spec)
	if c.Method == "" {
		b.WriteString("**Not made.**\n\n")
		return
	}
	auth := "no credential"
	if c.Auth != "" {
		auth = c.Auth + ", not saved"
	}
	fmt.Fprintf(b, "Made as `%s %s` (%s), answered **%d**.", c.Method, c.URL, auth, c.Status)
	if c.Note != "" {
		fmt.Fprintf(b, " %s", c.Note)
	}
	b.WriteString("\n\n")
	body := string(c.Response)
	if len(body) > 1500 {
		body = body[:1500] + " … (truncated here; whole in the file)"
	}
	fmt.Fprintf(b, "```json\n%s\n```\n\n", body)
}

func writeAudit(b *strings.Builder, in Input) {
	b.WriteString("## Audit SHA-256 references\n\n")
	if len(in.Audit) == 0 {
		b.WriteString("None recorded in this run.\n\n")
	} else {
		b.WriteString("Digests only; no payload. From `GET /audit/{proposal_id}` of the verification proposals.\n\n")
		b.WriteString("| proposal | what | sha256 |\n|---|---|---|\n")
		for _, a := range in.Audit {
			fmt.Fprintf(b, "| `%s` | %s | `%s` |\n", a.ProposalID, a.What, a.SHA256)
		}
		b.WriteString("\n")
	}
	if in.AuditVerify != "" {
		fmt.Fprintf(b, "`fabric audit-verify` on the run's store: %s\n\n", in.AuditVerify)
	}
}

func writeBlockers(b *strings.Builder, blockers []string) {
	b.WriteString("## Blockers and remediation\n\n")
	if len(blockers) == 0 {
		b.WriteString("None.\n")
		return
	}
	for _, x := range blockers {
		fmt.Fprintf(b, "- %s\n", x)
	}
}

// RenderSummary writes PhaseI.4_final_summary.md.
func RenderSummary(in Input) string {
	var b strings.Builder
	header(&b, in, "Phase I.4 — final summary")
	b.WriteString("| Task | Report | Tests passed / failed / skipped | P1 | P2 | P3 | P4 | P5 | P6 | P7 |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range Tasks {
		tr := in.Tests[t.ID]
		counts := "not run"
		if tr.Run != nil {
			c := tr.Run.Counts()
			counts = fmt.Sprintf("%d / %d / %d", c.Passed, c.Failed, c.Skipped)
		}
		fmt.Fprintf(&b, "| %s %s | [%s](%s) | %s |", t.ID, t.Name, t.Report(), t.Report(), counts)
		for _, r := range Matrix(in.Module, t, tr.Run) {
			fmt.Fprintf(&b, " %s |", r.Status)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	e := in.Tests["end2end"]
	if e.Run != nil {
		c := e.Run.Counts()
		fmt.Fprintf(&b, "End to end (`tests/integration`, the spec's test_I.4_end2end): %d passed, %d failed, %d skipped (with subtests); log `reports/logs/%s`.\n\n",
			c.Passed, c.Failed, c.Skipped, EndToEnd.Log)
	}
	writeAudit(&b, in)
	blockers := infraBlockers(in)
	for _, t := range Tasks {
		for _, x := range taskBlockers(in, t) {
			blockers = append(blockers, t.ID+": "+x)
		}
	}
	if e.Run != nil {
		for _, f := range e.Run.Failures() {
			blockers = append(blockers, "end to end: test failed: "+f)
		}
	}
	blockers = append(blockers, in.Problems...)
	writeBlockers(&b, blockers)
	b.WriteString("\n## Manual next steps\n\n")
	b.WriteString("- Review `reports/I.4_precheck.json` before any push to a production branch.\n")
	b.WriteString("- For production, provision every dependency the precheck reports missing (above), then run `make reports` again: the decision must be PROCEED and `SIMULATION_MODE=false`.\n")
	b.WriteString("- A human reviews every high-impact enactment; recommended tag once the matrix is all PASS outside simulation: `v9.3.0-phaseI.4`.\n")
	return b.String()
}

// Snapshot is PhaseI.4_Snapshot.json (the successor of the spec's
// scripts/generate_phase_snapshot.py): the run's summary and the SHA-256 of every
// file written.
func Snapshot(in Input, files map[string][]byte) ([]byte, error) {
	type taskSnap struct {
		ID       string            `json:"id"`
		Name     string            `json:"name"`
		Report   string            `json:"report"`
		Tests    Counts            `json:"tests"`
		Failed   []string          `json:"failed_tests"`
		Policies map[string]string `json:"policies"`
	}
	type fileSnap struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
		Bytes  int    `json:"bytes"`
	}
	snap := struct {
		Phase          string     `json:"phase"`
		VersionTarget  string     `json:"version_target"`
		GeneratedAt    string     `json:"generated_at"`
		Commit         string     `json:"commit"`
		Branch         string     `json:"branch"`
		Dirty          bool       `json:"dirty"`
		Mode           string     `json:"test_selection"`
		Precheck       string     `json:"precheck_decision"`
		SimulationMode bool       `json:"simulation_mode"`
		Missing        []string   `json:"missing"`
		Tasks          []taskSnap `json:"tasks"`
		EndToEnd       Counts     `json:"end_to_end"`
		Audit          []AuditRef `json:"audit_sha256"`
		AuditVerify    string     `json:"audit_verify"`
		Files          []fileSnap `json:"files"`
	}{
		Phase: "I.4", VersionTarget: "v9.3.0-phaseI.4", GeneratedAt: in.GeneratedAt.UTC().Format(time.RFC3339),
		Commit: in.Commit, Branch: in.Branch, Dirty: in.Dirty, Mode: in.Mode,
		Precheck: in.Precheck.Decision, SimulationMode: in.Precheck.SimulationMode, Missing: in.Precheck.Missing,
		Audit: in.Audit, AuditVerify: in.AuditVerify,
	}
	for _, t := range Tasks {
		tr := in.Tests[t.ID]
		ts := taskSnap{ID: t.ID, Name: t.Name, Report: t.Report(), Policies: map[string]string{}, Failed: []string{}}
		if tr.Run != nil {
			ts.Tests = tr.Run.Counts()
			ts.Failed = append(ts.Failed, tr.Run.Failures()...)
		}
		for _, r := range Matrix(in.Module, t, tr.Run) {
			ts.Policies[r.Policy.ID] = r.Status
		}
		snap.Tasks = append(snap.Tasks, ts)
	}
	if e := in.Tests["end2end"]; e.Run != nil {
		snap.EndToEnd = e.Run.Counts()
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		snap.Files = append(snap.Files, fileSnap{Path: "reports/" + n, SHA256: hex.EncodeToString(sum[:]), Bytes: len(files[n])})
	}
	return json.MarshalIndent(snap, "", "  ")
}
