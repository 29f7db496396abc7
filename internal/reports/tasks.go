// Package reports writes the spec's evidence files (reports/I.4.<n>_<short>.md, the
// verification outputs, reports/PhaseI.4_Snapshot.json, reports/PhaseI.4_final_summary.md)
// from a real run: the go test results of each task's packages (test2json events),
// the precheck's report and the answers of a running fabric. It holds no run of its
// own: tests/reports drives it (`make reports`).
//
// The P1–P7 matrix of each task is derived from named tests: a policy is PASS when
// every test cited for it ran and passed in this run, BLOCKED otherwise (failed,
// skipped, or not run), so a report can never claim a policy no test backs.
package reports

import "sort"

// TestRef names one top-level test: the package folder (relative to the module root)
// and the function.
type TestRef struct {
	Dir  string
	Name string
}

// Policy is one of the spec's P1–P7.
type Policy struct {
	ID    string
	Title string
}

// Policies are the spec's policies, in order.
var Policies = []Policy{
	{"P1", "Data Privacy"},
	{"P2", "Secrets & Signing"},
	{"P3", "Execution Safety"},
	{"P4", "Observability"},
	{"P5", "Multi-Tenancy"},
	{"P6", "Performance Budget"},
	{"P7", "Resilience & Recovery"},
}

// Cite is a policy's evidence for one task: the tests, and what they show.
type Cite struct {
	Tests []TestRef
	Shows string
}

// Verification is one of the spec's verification calls for a task.
type Verification struct {
	// File is the output's name under reports/ (the spec's).
	File string
	// Spec is the spec's command, as written.
	Spec string
}

// Task is one of the spec's seven tasks.
type Task struct {
	ID      string // "I.4.1"
	Short   string // "decision_coordinator"
	Name    string // "Decision Coordinator"
	Service string // services/<Service>
	// Packages are the task's own test packages (go test patterns, relative).
	Packages []string
	// Log is the test log's name under reports/logs/.
	Log      string
	Verify   []Verification
	Policies map[string]Cite
}

// Report is the task report's file name under reports/.
func (t Task) Report() string { return t.ID + "_" + t.Short + ".md" }

// Cited are the distinct tests the task's matrix cites, sorted.
func (t Task) Cited() []TestRef {
	seen := map[TestRef]bool{}
	var out []TestRef
	for _, c := range t.Policies {
		for _, r := range c.Tests {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	sortRefs(out)
	return out
}

func sortRefs(refs []TestRef) {
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Dir != refs[j].Dir {
			return refs[i].Dir < refs[j].Dir
		}
		return refs[i].Name < refs[j].Name
	})
}

// Folders of the packages the matrix cites.
const (
	coordinator   = "services/decision-coordinator/coordinator"
	coordinatorE  = "services/decision-coordinator/tests"
	composer      = "services/proposal-composer/composer"
	composerE     = "services/proposal-composer/tests"
	negotiator    = "services/federated-negotiator/negotiator"
	negotiatorE   = "services/federated-negotiator/tests"
	scorer        = "services/confidence-scorer/scorer"
	scorerE       = "services/confidence-scorer/tests"
	hil           = "services/hil-gateway/hil"
	hilWeb        = "services/hil-gateway/hil/web"
	auditor       = "services/decision-auditor/auditor"
	auditorE      = "services/decision-auditor/tests"
	canary        = "services/sim-canary/canary"
	canaryE       = "services/sim-canary/tests"
	integration   = "tests/integration"
	auditlog      = "internal/auditlog"
	approvalRules = "internal/approval"
	policyPkg     = "internal/policy"
	notify        = "internal/notify"
	redactPkg     = "internal/redact"
	judgePkg      = "internal/judge"
)

func refs(dir string, names ...string) []TestRef {
	out := make([]TestRef, len(names))
	for i, n := range names {
		out[i] = TestRef{Dir: dir, Name: n}
	}
	return out
}

func join(rs ...[]TestRef) []TestRef {
	var out []TestRef
	for _, r := range rs {
		out = append(out, r...)
	}
	return out
}

// healthAndMetrics is P4's cross-cutting test: every service's /health and /metrics.
var healthAndMetrics = refs(integration, "TestHealthAndMetricsOnEveryService")

// Tasks are the spec's seven tasks with their packages, verification calls and the
// tests that back each policy.
var Tasks = []Task{
	{
		ID: "I.4.1", Short: "decision_coordinator", Name: "Decision Coordinator", Service: "decision-coordinator",
		Packages: []string{"./services/decision-coordinator/..."}, Log: "I.4.1.log",
		Verify: []Verification{
			{File: "I.4.1_post.json", Spec: `curl -s -X POST http://localhost:9201/proposals -H "Content-Type:application/json" -d '{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}'`},
			{File: "I.4.1_health.json", Spec: `curl -s http://localhost:9201/health`},
		},
		Policies: map[string]Cite{
			"P1": {join(refs(coordinator, "TestCheckPersonalData"), refs(integration, "TestConsentIsVerifiedAndScanned")),
				"personal data is refused (403) unless a signed consent covers it; a consent carrying PII itself is refused and stored nowhere"},
			"P2": {refs(coordinator, "TestVerifyManifestInProduction", "TestVerifyConsensusPolicy"),
				"outside simulation, unsigned or untrusted manifests and missing or invalid consensus bundles are refused"},
			"P3": {refs(coordinator, "TestNothingEnactedAboveApproval", "TestPolicyEvaluationErrorFailsClosed"),
				"nothing is enacted above the impact its approvals cover; a policy error classifies as high impact"},
			"P4": {join(healthAndMetrics, refs(coordinator, "TestAuditOutboxSurvivesAuditorOutage")),
				"/health and /metrics answer; every lifecycle event reaches the audit log in order, even across an auditor outage"},
			"P5": {join(refs(integration, "TestServiceOnlyMethodsRefuseEveryOtherPrincipal"), refs(policyPkg, "TestCrossTenant")),
				"a role means exactly itself; cross-tenant proposals follow the tenant policy (deny by default)"},
			"P6": {join(refs(coordinator, "TestNoNegotiationStartsAfterTheDeadline"), refs(integration, "TestPolicyDecisionTimeout")),
				"the decision deadline (PHASE_I4_DECISION_TIMEOUT_MS or the tenant policy's) bounds negotiation"},
			"P7": {refs(coordinator, "TestEnactInOneTransactionWithTheWorld", "TestEngineTakesOverAStoppedCoordinatorsProposals"),
				"the change and its pre/post record are one transaction; a stopped coordinator's proposals are finished by another"},
		},
	},
	{
		ID: "I.4.2", Short: "proposal_composer", Name: "Proposal Composer", Service: "proposal-composer",
		Packages: []string{"./services/proposal-composer/..."}, Log: "I.4.2.log",
		Verify: []Verification{
			{File: "I.4.2_compose.json", Spec: `curl -s -X POST http://localhost:9202/compose -d '{"context":"reduce cost","tenant_id":"t1"}'`},
		},
		Policies: map[string]Cite{
			"P1": {join(refs(composer, "TestModelSeesOnlyRedactedInput", "TestRedaction"), refs(composerE, "TestConsentedPersonalData")),
				"the model sees redacted input only; personal data stays only under a verified signed consent"},
			"P2": {join(refs(composer, "TestSignature"), refs(composerE, "TestComposedManifestsAreAccepted")),
				"every composed manifest is signed, and the coordinator accepts it exactly as composed"},
			"P3": {join(refs(composer, "TestValidation"), refs(integration, "TestAttackOutOfSchemaParameters")),
				"out-of-bounds inputs are refused; a parameter outside the action's schema never reaches enactment"},
			"P4": {join(refs(composer, "TestMetrics"), healthAndMetrics),
				"compositions are counted in /metrics"},
			"P5": {refs(composerE, "TestComposeOverREST"),
				"a token composes for its own tenant only (another tenant: 403)"},
			"P6": {refs(composer, "TestModelFailure", "TestBoundsCheck"),
				"a failing model answers at once with a clear error; inputs are bounded"},
			"P7": {refs(composer, "TestDeterminism"),
				"the same input composes the same manifest (reproducible, replayable)"},
		},
	},
	{
		ID: "I.4.3", Short: "federated_negotiator", Name: "Federated Negotiator", Service: "federated-negotiator",
		Packages: []string{"./services/federated-negotiator/..."}, Log: "I.4.3.log",
		Verify: []Verification{
			{File: "I.4.3_negotiate.json", Spec: `curl -s http://localhost:9203/negotiate -d '{"proposal_id":"p1"}'`},
		},
		Policies: map[string]Cite{
			"P1": {refs(integration, "TestSignaturesAndConsent"),
				"regions see the manifest the coordinator accepted: personal data only under a signed consent"},
			"P2": {refs(negotiator, "TestQuorumCertificateVerifies", "TestQuorumCertificateTampering", "TestAgentFailuresAndForgeries"),
				"votes are signed; a forged vote never counts; the quorum certificate verifies and any tampering is caught"},
			"P3": {join(refs(negotiator, "TestRehearsalNegotiatesLikeTheRealThingAndStoresNothing"), refs(integration, "TestAttackCounterOfferRaisesImpact")),
				"a counter-offer is classified again before enactment; a rehearsal stores nothing"},
			"P4": {join(refs(negotiator, "TestMetrics"), refs(negotiatorE, "TestWatchNegotiation")),
				"rounds and outcomes are in /metrics; progress is streamed to watchers"},
			"P5": {refs(negotiator, "TestTenantIsolation"),
				"a tenant cannot see or start another tenant's negotiation"},
			"P6": {join(refs(negotiator, "TestSilentRegionsExpire"), refs(negotiatorE, "TestNegotiateOverREST")),
				"negotiation is asynchronous with progress; silent regions end it EXPIRED at the deadline"},
			"P7": {refs(negotiator, "TestResumeAfterRestart", "TestStartIsIdempotentPerProposal"),
				"a negotiation resumes after a restart; a retried start never starts a second one"},
		},
	},
	{
		ID: "I.4.4", Short: "confidence_scorer", Name: "Confidence Scorer", Service: "confidence-scorer",
		Packages: []string{"./services/confidence-scorer/..."}, Log: "I.4.4.log",
		Verify: []Verification{
			{File: "I.4.4_score.json", Spec: `curl -s -X POST http://localhost:9204/score -d '{"proposal_id":"p1"}'`},
		},
		Policies: map[string]Cite{
			"P1": {refs(redactPkg, "TestFailClosed"),
				"the scorer gets no personal data (the coordinator's manifest); anything logged is redacted, failing closed"},
			"P2": {refs(coordinator, "TestCalleesGetTheirInputsInTheRequest"),
				"the scorer scores the manifest the coordinator stored, with its digest"},
			"P3": {refs(scorer, "TestRisk", "TestBounds"),
				"risk rises with impact and blast radius; scores stay in range whatever the inputs"},
			"P4": {refs(scorer, "TestExampleExplanation", "TestTopFactor"),
				"every score comes with an explanation naming the factor that moved it most"},
			"P5": {refs(scorer, "TestServiceTenantScoping"),
				"history evidence is the tenant's own"},
			"P6": {refs(scorer, "TestServiceSlowMetricsTimeOut", "TestServiceDegradesWithoutOptionalSources"),
				"a slow metrics source is cut at its budget; missing optional sources degrade, never block"},
			"P7": {join(refs(scorer, "TestDeterminism"), refs(scorerE, "TestScoreASubmittedProposal")),
				"the same inputs give the same score (replayable)"},
		},
	},
	{
		ID: "I.4.5", Short: "hil_gateway", Name: "Human-in-Loop Gateway", Service: "hil-gateway",
		Packages: []string{"./services/hil-gateway/..."}, Log: "I.4.5.log",
		Verify: []Verification{
			{File: "I.4.5_pending.json", Spec: `curl -s http://localhost:9205/pending/t1`},
		},
		Policies: map[string]Cite{
			"P1": {refs(notify, "TestRenderRefusesPersonalData"),
				"notifications carry only what an approver needs; a message with personal data is refused"},
			"P2": {join(refs(hil, "TestSignatureOverTheManifestDigest"), refs(auditor, "TestApvExportCarriesSignedApprovals")),
				"each approval is signed over the manifest digest and carried, signed, in the decision export"},
			"P3": {join(refs(integration, "TestApprovalQuorumWithMFA"), refs(hil, "TestApproveIsTheTokensSubject"), refs(approvalRules, "TestSelfApprovalRefused")),
				"high impact waits for distinct approvers with MFA; nobody approves as someone else or their own proposal"},
			"P4": {join(refs(integration, "TestApprovalReadsNeverWrite"), refs(hil, "TestDeliverEveryNotificationOnce")),
				"each vote is audited; reads change nothing; every notification is delivered"},
			"P5": {refs(hil, "TestWebAuthnTenantAndSubjectIsolation"),
				"approvers act in their own tenant, with their own authenticators"},
			"P6": {refs(integration, "TestApprovalExpires"),
				"a request nobody answers expires at its deadline, after a reminder"},
			"P7": {refs(hil, "TestDeliverStoppedMidSendResumesAfterLease", "TestRefusalsComeBeforeTheCodeIsSpent"),
				"a delivery cut by a crash resumes; a refused vote spends no code"},
		},
	},
	{
		ID: "I.4.6", Short: "decision_auditor", Name: "Decision Auditor", Service: "decision-auditor",
		Packages: []string{"./services/decision-auditor/...", "./internal/auditlog/..."}, Log: "I.4.6.log",
		Verify: []Verification{
			{File: "I.4.6_audit.json", Spec: `curl -s http://localhost:9206/audit/p1`},
		},
		Policies: map[string]Cite{
			"P1": {join(refs(auditorE, "TestNoSecretOrPIIInResponsesOrRows"), refs(auditlog, "TestPayloadIsNeverStored")),
				"the log stores digests, never payloads, secrets or personal data"},
			"P2": {join(refs(auditorE, "TestAuditTrailWithVerifiableProofs"), refs(auditlog, "TestVerifyChecksCheckpointSignatures"), refs(integration, "TestDecisionExportVerifiesOffline")),
				"entries are chained and checkpoints ML-DSA-65 signed; a decision export verifies offline"},
			"P3": {join(refs(auditorE, "TestAPIOnlyReadsAndAppends"), refs(integration, "TestAdminCannotWriteTheAuditLog")),
				"nothing in the API changes or removes an entry; only the fabric's services append"},
			"P4": {join(refs(auditorE, "TestCheckpointPublishedAndPinned"), refs(auditlog, "TestVerifyNamesTheFirstTamperedEntry")),
				"checkpoints are published for second parties; verification names the first tampered entry"},
			"P5": {refs(auditorE, "TestTenantIsolation"),
				"one log per tenant; a tenant reads its own only"},
			"P6": {refs(auditlog, "TestCheckpointBatching"),
				"appends are batched under one signature per checkpoint"},
			"P7": {join(refs(auditorE, "TestRollbackPlan"), refs(auditor, "TestRefusesToStartBehindItsPublishedCheckpoint")),
				"rollback plans come from the recorded pre/post SHA-256; a log cut behind a checkpoint is refused"},
		},
	},
	{
		ID: "I.4.7", Short: "sim_canary", Name: "Simulation & Canary Runner", Service: "sim-canary",
		Packages: []string{"./services/sim-canary/...", "./internal/judge/..."}, Log: "I.4.7.log",
		Verify: []Verification{
			{File: "I.4.7_canary.json", Spec: `curl -s -X POST http://localhost:9207/canary/run -d '{"proposal_id":"p1","dry_run":true}'`},
		},
		Policies: map[string]Cite{
			"P1": {refs(canaryE, "TestDryRunChangesNothing"),
				"the dry run checks consent (NOT_APPLICABLE without personal data) and writes nothing"},
			"P2": {refs(canary, "TestReplayKeepsToTheCallersTenantAndReportsWhatDoesNotVerify"),
				"a replayed decision whose signatures do not verify is reported, never re-decided as if valid"},
			"P3": {refs(canaryE, "TestDryRunNeedsApprovalNotifiesNobody", "TestWorseCanaryIsRolledBack"),
				"the dry run says who must approve; a worse canary is rolled back"},
			"P4": {refs(integration, "TestCanaryAnswersThroughTheGateway"),
				"the runner answers through the gateway with /health and /metrics"},
			"P5": {refs(canaryE, "TestRunErrors"),
				"another tenant's proposal is as unknown as a missing one"},
			"P6": {join(refs(canaryE, "TestMissingDataHoldsAndStopRollsBack"), refs(judgePkg, "TestPropertyCriticalNeverPasses")),
				"missing data holds a rollout for a human; a critical metric never passes"},
			"P7": {refs(canaryE, "TestStopHaltsARunningRollout", "TestRolloutResumesAfterARestart"),
				"the emergency stop restores the pre-state; a rollout resumes after a restart"},
		},
	},
}

// EndToEnd is the spec's integration test (tests/integration/test_I.4_end2end.py).
var EndToEnd = struct {
	Packages []string
	Log      string
	Cited    []TestRef
}{
	Packages: []string{"./tests/integration/..."},
	Log:      "I.4_end2end.log",
	Cited:    refs(integration, "TestDecisionPath", "TestSubmitAndReadProposal"),
}

// Files are the files the spec lists under reports/ that a run writes (PhaseI.4_block.txt
// only when the precheck blocks, so not here).
func Files() []string {
	out := []string{"I.4_precheck.json", "logs/I.4_precheck.log", "logs/" + EndToEnd.Log,
		"PhaseI.4_Snapshot.json", "PhaseI.4_final_summary.md"}
	for _, t := range Tasks {
		out = append(out, t.Report(), "logs/"+t.Log)
		for _, v := range t.Verify {
			out = append(out, v.File)
		}
	}
	sort.Strings(out)
	return out
}
