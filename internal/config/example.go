package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/decision-fabric/fabric/internal/fabric"
)

// The per-service configuration examples (services/<name>/config.example.yaml) are
// generated from here: the values are Default()'s, the words are exampleDocs, and what
// differs between services is exampleNeeds. `go run ./internal/config/cmd/genexamples`
// (part of `make generate`) writes them; a test fails when a committed one differs.

// exampleDoc documents one key of the example: head is the comment block above it
// (lines joined with "\n"), line the comment at the end of its line.
type exampleDoc struct{ head, line string }

// exampleDocs documents every key the examples show, by dotted path. A key without an
// entry makes Example fail, so a new setting cannot reach the examples undocumented.
var exampleDocs = map[string]exampleDoc{
	"target":             {head: `Which module to run: "all" or one service name.`},
	"data_dir":           {head: "Embedded database and development keys (created 0700 on first run). Point every\nservice of one host at the same folder, or set POSTGRES_DSN."},
	"store_dir":          {head: "Embedded (SQLite) database folder for this service only; empty = data_dir. A service\ngiven its own folder (or its own POSTGRES_DSN) owns its own database. Also FABRIC_STORE_DIR."},
	"engine":             {head: "The coordinator's lifecycle engine (docs/architecture.md): it claims proposals with\nleases, renews them every lease/3 and looks for unclaimed ones every sweep."},
	"engine.lease":       {line: "a crashed coordinator's proposals are taken over after about this long (0 = 15s)"},
	"engine.sweep":       {line: "how often to look for unclaimed proposals (0 = 1s)"},
	"events":             {head: "Lifecycle events to Kafka (docs/events.md): with KAFKA_URL set, the coordinator\npublishes every proposal transition through its event outbox."},
	"events.kafka_topic": {line: "the topic; also FABRIC_EVENTS_KAFKA_TOPIC"},
	"reports_dir":        {head: "Where the precheck writes I.4_precheck.json and logs/I.4_precheck.log."},
	"simulation_mode": {head: `"" lets the precheck decide; "true" forces simulation; "false" demands production` +
		"\n(the service refuses to start if production dependencies are missing)."},
	"decision_timeout_ms": {head: "Negotiation deadline in milliseconds (P6)."},
	"policy_file":         {head: "Decision policy (docs/policies/decision_policy.md); empty = the built-in\npolicies/default.yaml. Also FABRIC_POLICY_FILE."},
	"regions_file":        {head: "The negotiator's regions and simulated agents; empty = the built-in\nservices/federated-negotiator/negotiator/regions.yaml."},
	"region_keys_dir": {head: `The region key registry: a folder of "<region>.pub" files (PEM Ed25519 public keys)` +
		"\nthat verify the regions' votes in quorum certificates. Required outside simulation\n(`fabric region-keys export -out DIR` writes the simulated regions' keys); empty in\nsimulation derives them from the negotiator's seed in data_dir. Also\nFABRIC_REGION_KEYS_DIR."},
	"trusted_keys": {head: "PEM public keys (cosign.pub) whose manifest and consent signatures are trusted\n(P2), besides the fabric's own signing key."},
	"executors": {head: "Tenants whose enactments go to their own webhook instead of the simulated world\n(HMAC-signed requests; protocol in internal/world/webhook.go), e.g.\n  executors:\n" +
		`    t1: {webhook_url: "https://deploy.t1.example/fabric", secret_env: T1_WEBHOOK_SECRET}`},
	"max_request_bytes": {head: "Largest REST body / gRPC message accepted, in bytes."},
	"gc_percent":        {head: "Go garbage collector target (GOGC), unless the GOGC environment variable is set:\n200 trades a larger heap for less collection work (docs/operations.md)."},
	"shutdown_timeout":  {head: "How long a graceful shutdown may take."},
	"services": {head: "Addresses. This service listens on its own entry; the others say where to reach peers\n" +
		`over gRPC ("dial", default 127.0.0.1 and the gRPC port).`},
	"services.*.http_addr": {line: "REST, /health and /metrics"},
	"services.*.grpc_addr": {line: "gRPC"},

	"auth":                  {head: "Token verification (P5)."},
	"auth.issuer":           {line: `every token's "iss"`},
	"auth.audience":         {line: `every token's "aud"`},
	"auth.public_key_file":  {head: "PEM public key of your identity provider. Empty: a development key in data_dir,\naccepted only in simulation mode."},
	"auth.service_key_file": {head: "The fabric's own Ed25519 private key (PEM), shared by its services, for the tokens\nthey call each other with (service role only). Empty: the development key in\nsimulation; outside it, audit appends wait in the coordinator's outbox until set.\nEnv FABRIC_SERVICE_KEY_FILE."},

	"integrations":                        {head: "External systems (each also read from its environment variable)."},
	"integrations.postgres_dsn":           {line: "POSTGRES_DSN; empty = embedded SQLite in data_dir"},
	"integrations.vault_addr":             {line: "VAULT_ADDR"},
	"integrations.cosign_key_path":        {line: "COSIGN_KEY_PATH"},
	"integrations.global_registry_url":    {line: "GLOBAL_REGISTRY_URL"},
	"integrations.federation_token":       {line: "FEDERATION_TOKEN (never printed)"},
	"integrations.redis_url":              {line: "REDIS_URL"},
	"integrations.kafka_url":              {line: "KAFKA_URL"},
	"integrations.prom_url":               {line: "PROM_URL"},
	"integrations.neural_fabric_url":      {line: "NEURAL_FABRIC_URL"},
	"integrations.quantum_provider":       {line: `QUANTUM_PROVIDER ("sim" or an http(s) URL)`},
	"integrations.vault":                  {head: "Keys read from Vault's KV v2 engine at start (needs vault_addr; token: VAULT_TOKEN,\nelse token_file). A path set replaces the key's file setting (leave that empty)."},
	"integrations.vault.token_file":       {line: "VAULT_TOKEN_FILE (e.g. a Vault agent sink)"},
	"integrations.vault.kv_mount":         {line: `KV v2 mount; empty = "secret"`},
	"integrations.vault.service_key_path": {line: `field "key": PEM Ed25519 (replaces auth.service_key_file)`},
	"integrations.vault.cosign_key_path":  {line: `fields "key" (cosign PEM), "password" (replaces cosign_key_path)`},
	"integrations.vault.mfa_key_path":     {line: `field "key": base64 of 32 bytes (replaces hil.mfa_key_file)`},

	"telemetry":               {head: "Logs and traces."},
	"telemetry.log_level":     {line: "debug, info, warn, error"},
	"telemetry.log_format":    {line: "json or text"},
	"telemetry.otlp_endpoint": {line: "host:port of an OTLP/gRPC collector; also OTEL_EXPORTER_OTLP_ENDPOINT"},

	"admission":                       {head: "Admission control (docs/operations.md): beyond max_in_flight running and max_queue\nwaiting (at most max_wait), requests get 503; a tenant beyond its quota gets 429;\nboth with Retry-After."},
	"admission.max_in_flight":         {line: "requests this service runs at once"},
	"admission.max_queue":             {line: "more that may wait for a slot"},
	"admission.max_wait":              {line: "longest wait in the queue"},
	"admission.retry_after":           {line: "Retry-After of a 503"},
	"admission.degraded_for":          {line: `GET /health says "degraded" this long after the last 503`},
	"admission.max_streams":           {line: "server streams and long polls (wait_ms) held open"},
	"admission.service_max_in_flight": {line: "calls between the fabric's services (service identity)"},
	"admission.tenant":                {head: "Each tenant's quota, per service."},
	"admission.tenant.rate":           {line: "requests per second per tenant per service; 0 = off"},
	"admission.tenant.burst":          {line: "0 = rate"},
	"admission.tenant.max_in_flight":  {line: "running or queued per tenant per service; 0 = off"},

	"audit": {head: "Where the auditor publishes its signed checkpoints outside the database\n(docs/operations.md, \"Audit checkpoints and witness\")."},
	"audit.checkpoint_file": {head: `Append-only file every signed checkpoint is appended to; empty = <data_dir>/audit/checkpoints,` +
		"\n\"-\" = off. The auditor refuses to start when its store is behind its last checkpoint."},
	"audit.witness_url":       {head: "A witness (`fabric witness serve`) that cosigns each consistent checkpoint; empty: none."},
	"audit.witness_key_file":  {head: "The witness's note verifier key (its witness.pub); required with witness_url."},
	"audit.simulated_witness": {head: "Run a witness inside the auditor (simulation only; for trying the flow, not protection)."},

	"hil":                             {head: "Approvals (docs/operations.md, \"Approvals and notifications\"): notification channels,\nchat identities, approver keys, the approval page's address. Secrets are named by\nenvironment variable (*_env), never written here."},
	"hil.public_url":                  {line: "the approval page as approvers reach it; empty = http://127.0.0.1:<http port>/ui"},
	"hil.channels":                    {line: `in order: requests and reminders go to the first, escalations to the second; "simulated", "smtp", "slack", "telegram" (empty = simulated)`},
	"hil.smtp":                        {head: "E-mail (one message per event to every address in to; Message-ID from the event id)."},
	"hil.smtp.host":                   {line: "SMTP server"},
	"hil.smtp.port":                   {line: "0 = 587 (starttls), 465 (tls), 25 (none)"},
	"hil.smtp.from":                   {line: "sender address"},
	"hil.smtp.to":                     {line: "recipients (an approvers' list)"},
	"hil.smtp.username":               {line: "SMTP AUTH user; empty = no AUTH"},
	"hil.smtp.password_env":           {line: "names the variable holding the SMTP password"},
	"hil.smtp.tls":                    {line: `"starttls" (default), "tls", or "none" (loopback only)`},
	"hil.slack":                       {head: "Slack: a bot with chat:write; interactivity URL <gateway>/hil/slack/interactions."},
	"hil.slack.channel_id":            {line: "conversation the requests are posted to"},
	"hil.slack.token_env":             {line: "names the variable holding the bot token"},
	"hil.slack.signing_secret_env":    {line: "names the variable holding the signing secret"},
	"hil.slack.api_url":               {line: "empty = Slack's"},
	"hil.telegram":                    {head: "Telegram: a bot; setWebhook to <gateway>/hil/telegram/webhook with a secret_token."},
	"hil.telegram.chat_id":            {line: "chat the requests are posted to"},
	"hil.telegram.token_env":          {line: "names the variable holding the bot token"},
	"hil.telegram.webhook_secret_env": {line: "names the variable holding the webhook secret token"},
	"hil.telegram.server_url":         {line: "empty = Telegram's"},
	"hil.chat_users":                  {head: "Chat identities and the approvers they stand for; a chat vote counts only after that\napprover's TOTP code, e.g.\n  chat_users:\n    \"slack:U0123ABC\": {subject: ana, tenant: t1, roles: [approver], groups: [sre]}"},
	"hil.approver_keys_dir":           {head: "Approvers' public keys as <subject>.pub (cosign or Ed25519 PEM): approvals are\nsigned over the manifest digest with them (required outside simulation)."},
	"hil.require_signature":           {line: "true asks for approver signatures in simulation too (always on outside it)"},
	"hil.delivery_lease":              {line: "a notification being sent is held this long; after a crash it is retried then (0 = 30s)"},
	"hil.mfa_key_file":                {head: "32 random bytes that seal TOTP secrets; empty = data_dir/keys/mfa.key (created in\nsimulation only)."},
	"hil.webauthn":                    {head: "WebAuthn (security keys, platform authenticators) as an approver's second factor\ninstead of a TOTP code (docs/operations.md, \"WebAuthn\"); off while rp_id is empty.\nAn approver registers with POST /mfa/webauthn/register/begin (a current TOTP code\nin the body) and .../finish, then votes with POST /approve/{id}/webauthn/begin and\nthe assertion in mfa.webauthn. The approval page (/ui) stays TOTP-only."},
	"hil.webauthn.rp_id":              {line: "host name approvers reach the gateway at, e.g. approvals.example; empty = off"},
	"hil.webauthn.rp_display_name":    {line: `shown by the authenticator; empty = "Decision Fabric"`},
	"hil.webauthn.rp_origins":         {line: "https://<rp_id or a subdomain>[:port]; http://localhost[:port] for development"},

	"federation":                        {head: "Regions as processes (docs/operations.md, \"Federation\"). Every federation call carries\nFEDERATION_TOKEN (integrations.federation_token) as a bearer; with tls set, also mutual TLS\n(required outside simulation unless every endpoint is loopback, or allow_insecure)."},
	"federation.enabled":                {line: "coordinate the regions of the registry over gRPC instead of the simulated ones"},
	"federation.registry_file":          {line: "the registry (JSON) when GLOBAL_REGISTRY_URL is not set"},
	"federation.region":                 {head: "This process's own region: when name is set, it answers vote requests on grpc_addr."},
	"federation.region.name":            {line: "the region, as in the registry"},
	"federation.region.key_file":        {line: "its Ed25519 private key (PEM PKCS #8); the registry holds its public key"},
	"federation.region.grpc_addr":       {line: "RegionService listener (token and mTLS, not JWTs)"},
	"federation.region.allowed_actions": {line: "actions it accepts; empty = the catalogue's"},
	"federation.region.max_replicas":    {line: "above it the region rejects; 0 = the catalogue's 1000"},
	"federation.region.capacity":        {line: "above it (within max_replicas) it counter-offers; 0 = no limit"},
	"federation.region.cost_ceiling":    {line: "monthly; 0 = none"},
	"federation.region.replica_cost":    {line: "monthly cost of one replica; 0 = unknown"},
	"federation.region.currency":        {line: "ISO 4217 code of the two amounts"},
	"federation.region.vote_delay":      {line: "TEST-ONLY: delay every decision (a region slower than the deadline abstains)"},
	"federation.tls":                    {head: "Mutual TLS between regions: all three PEM files, or none."},
	"federation.tls.cert_file":          {line: "this process's certificate"},
	"federation.tls.key_file":           {line: "its private key"},
	"federation.tls.ca_file":            {line: "the federation's CA, which signs every region's certificate"},
	"federation.allow_insecure": {head: "Outside simulation, a federation without tls refuses to start when the token would\n" +
		"cross the network in cleartext (a region endpoint or grpc_addr that is not loopback).\n" +
		"true accepts it anyway, with a warning at start (docs/security.md)."},

	"canary":                      {head: "How canary rollouts judge each wave against its baseline (internal/judge; docs/operations.md,\n\"Canary rollouts and the emergency stop\"). Without metrics: latency_p99 must not increase,\nerror_rate must not increase (critical), throughput must not decrease. A metric is\n  {name: latency_p99|error_rate|throughput, direction: increase|decrease|either,\n   critical: false, tolerance: 0.25}"},
	"canary.judge":                {head: "Every tenant's judgement."},
	"canary.judge.metrics":        {line: "empty = the defaults above"},
	"canary.judge.confidence":     {line: "0 = 0.98"},
	"canary.judge.pass_score":     {line: "0 = 95"},
	"canary.judge.marginal_score": {line: "0 = 75"},
	"canary.window":               {line: "metrics compared per wave (0 = 10m)"},
	"canary.step":                 {line: "one sample per step (0 = 30s)"},
	"canary.settle":               {line: "a wave runs this long before it is judged (0 = window with PROM_URL, at once in simulation)"},
	"canary.tenants":              {head: "Per tenant, a judgement replacing canary.judge, e.g.\n  tenants:\n    t1: {metrics: [{name: error_rate, direction: increase, critical: true}]}"},
}

// exampleNeed is what one service's example says beyond the common keys.
type exampleNeed struct {
	// intro is a paragraph after the file's header, about this service.
	intro string
	// docs replace or extend exampleDocs for this service (a head ending in "\n+"
	// is appended to the common one instead of replacing it).
	docs map[string]exampleDoc
	// sections are the top-level keys only this service reads, shown in its example
	// alone.
	sections []string
}

// exampleOnly are the top-level keys shown only in the examples of the services that
// name them in their exampleNeed.sections.
var exampleOnly = []string{"audit", "hil", "federation", "canary"}

// exampleNeeds are the services' own notes and sections.
var exampleNeeds = map[string]exampleNeed{
	fabric.Composer: {
		intro: "Templates come from services/proposal-composer/templates.yaml, embedded in the binary\n(see services/proposal-composer/README.md). The composer signs manifests with the\ncosign key at integrations.cosign_key_path (password: COSIGN_PASSWORD) in production,\nand with the simulation key in data_dir/keys otherwise.",
	},
	fabric.Negotiator: {
		docs: map[string]exampleDoc{
			"decision_timeout_ms": {head: "Negotiation deadline in milliseconds (P6); a request's deadline_ms (1-600000) overrides it."},
		},
		sections: []string{"federation"},
	},
	fabric.Scorer: {
		docs: map[string]exampleDoc{
			"integrations.prom_url":          {line: "PROM_URL: live error rate and CPU for scores (simulated when empty or unreachable)"},
			"integrations.neural_fabric_url": {line: "NEURAL_FABRIC_URL: model success probability (simulated when empty or unreachable)"},
		},
	},
	fabric.Auditor: {
		docs: map[string]exampleDoc{
			"data_dir": {head: "\nThe audit checkpoint signing keys live in data_dir/keys (audit-checkpoint-*.key, 0600):\ncreated on first use in simulation; in production provision them first with\n  go run ./services/decision-auditor/cmd/audit-keygen -dir data/keys"},
		},
		sections: []string{"audit"},
	},
	fabric.Canary: {
		sections: []string{"canary"},
	},
	fabric.HIL: {
		intro:    "The hil-gateway asks people to approve high-impact proposals: TOTP second factor\n(POST /mfa/enroll) or, where hil.webauthn is set, WebAuthn; approver signatures;\nnotifications by e-mail, Slack and Telegram; and the approval page at /ui.",
		sections: []string{"hil"},
	},
}

// exampleLineCommentColumn is where end-of-line comments start when the line is short
// enough.
const exampleLineCommentColumn = 28

// Example is the configuration example of one service: every key it may set, with the
// default value and what it means, for services/<service>/config.example.yaml.
func Example(service string) ([]byte, error) {
	if !slices.Contains(fabric.Names(), service) {
		return nil, fmt.Errorf("config example: unknown service %q", service)
	}
	need := exampleNeeds[service]
	c := Default()
	c.Target = service
	c.Services = map[string]Listen{service: c.Services[service]}
	var root yaml.Node
	if err := root.Encode(c); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Configuration for running %s on its own:\n", service)
	fmt.Fprintf(&b, "#   go run ./services/%s -config services/%s/config.example.yaml\n", service, service)
	b.WriteString(`# Every key is optional; the values shown are the defaults unless noted. Unknown keys
# are errors. Environment variables from the spec override the file (POSTGRES_DSN,
# SIMULATION_MODE, PHASE_I4_DECISION_TIMEOUT_MS, VAULT_ADDR, ...).
# Print the effective configuration (secrets redacted) with -print-config.
# Generated from internal/config (example.go and the defaults) by
# ` + "`go run ./internal/config/cmd/genexamples`" + ` (make generate): edit those, not this file.
`)
	if need.intro != "" {
		b.WriteString("\n")
		exampleComment(&b, "", need.intro)
	}
	doc := func(path string) (exampleDoc, error) {
		d, ok := exampleDocs[path]
		if o, has := need.docs[path]; has {
			if rest, appended := strings.CutPrefix(o.head, "\n"); appended {
				d.head += "\n" + rest
			} else {
				d = o
			}
			ok = true
		}
		if !ok {
			return d, fmt.Errorf("config example: %s is not documented in internal/config/example.go", path)
		}
		return d, nil
	}
	top := &root
	if top.Kind == yaml.DocumentNode {
		top = top.Content[0]
	}
	if err := exampleMapping(&b, top, "", 0, doc, func(key string) bool {
		return !slices.Contains(exampleOnly, key) || slices.Contains(need.sections, key)
	}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// exampleMapping writes the keys of a mapping node at indent, each with its docs. The
// top level (indent 0) separates its keys with blank lines.
func exampleMapping(b *bytes.Buffer, m *yaml.Node, prefix string, indent int, doc func(string) (exampleDoc, error), show func(string) bool) error {
	pad := strings.Repeat(" ", indent)
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, m.Content[i+1]
		if indent == 0 && !show(key) {
			continue
		}
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		if indent == 0 {
			b.WriteString("\n")
		}
		var d exampleDoc
		if prefix == "services" {
			// A service's own entry is documented by "services" above it and its
			// fields by "services.*.<field>".
			path = "services.*"
		} else {
			var err error
			if d, err = doc(path); err != nil {
				return err
			}
		}
		exampleComment(b, pad, d.head)
		if val.Kind == yaml.MappingNode && len(val.Content) > 0 {
			fmt.Fprintf(b, "%s%s:\n", pad, key)
			if err := exampleMapping(b, val, path, indent+2, doc, show); err != nil {
				return err
			}
			continue
		}
		value, err := exampleScalar(val)
		if err != nil {
			return fmt.Errorf("config example: %s: %w", path, err)
		}
		line := fmt.Sprintf("%s%s: %s", pad, key, value)
		if d.line != "" {
			line += strings.Repeat(" ", max(1, exampleLineCommentColumn-len(line))) + "# " + d.line
		}
		b.WriteString(line + "\n")
	}
	return nil
}

// exampleComment writes text as "# " lines at pad.
func exampleComment(b *bytes.Buffer, pad, text string) {
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		b.WriteString(strings.TrimRight(pad+"# "+l, " ") + "\n")
	}
}

// exampleScalar renders a leaf in flow style: empty collections as [] and {}, and in
// double quotes a string that YAML would quote, an empty one, or an address like ":9201"
// (valid plain YAML, but easy to misread).
func exampleScalar(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return "[]", nil
		}
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			return "{}", nil
		}
	case yaml.ScalarNode:
		out, err := yaml.Marshal(n)
		if err != nil {
			return "", err
		}
		s := strings.TrimSuffix(string(out), "\n")
		if n.Tag == "!!str" && (n.Value == "" || strings.ContainsAny(s[:1], `'":`)) {
			q := *n
			q.Style = yaml.DoubleQuotedStyle
			if out, err = yaml.Marshal(&q); err != nil {
				return "", err
			}
			s = strings.TrimSuffix(string(out), "\n")
		}
		return s, nil
	}
	return "", fmt.Errorf("want a scalar or an empty collection, not a %v", n.Kind)
}
