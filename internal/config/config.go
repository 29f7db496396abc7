// Package config is the one typed configuration of the fabric. The same struct serves
// the all-in-one process and a single service: `target` says which modules run.
//
// Precedence: built-in defaults < YAML file (strict: unknown keys are errors) <
// environment variables named in the spec (POSTGRES_DSN, SIMULATION_MODE, ...).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/precheck"

	"gopkg.in/yaml.v3"

	"github.com/decision-fabric/fabric/internal/fabric"
)

// Secret is a string that never prints: YAML, JSON and fmt show "<REDACTED>" when set.
type Secret string

const redacted = "<REDACTED>"

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// MarshalYAML hides the value when printing the effective config.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Reveal returns the secret value, for the one place that must use it.
func (s Secret) Reveal() string { return string(s) }

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses "500ms", "30s", ...
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration as text.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Listen is one service's addresses.
type Listen struct {
	// HTTPAddr is where REST, /health and /metrics listen, e.g. ":9201".
	HTTPAddr string `yaml:"http_addr"`
	// GRPCAddr is where gRPC listens, e.g. ":9301".
	GRPCAddr string `yaml:"grpc_addr"`
	// Dial is how other services reach this one over gRPC (host:port). Empty means
	// 127.0.0.1 with GRPCAddr's port, right for the all-in-one and single-host modes.
	Dial string `yaml:"dial,omitempty"`
}

// DialAddr is the address peers use to reach this service over gRPC.
func (l Listen) DialAddr() string {
	if l.Dial != "" {
		return l.Dial
	}
	host, port, err := net.SplitHostPort(l.GRPCAddr)
	if err != nil {
		return l.GRPCAddr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Auth configures JWT verification (P5).
type Auth struct {
	// Issuer every token must carry ("iss").
	Issuer string `yaml:"issuer"`
	// Audience every token must carry ("aud").
	Audience string `yaml:"audience"`
	// PublicKeyFile is a PEM public key (Ed25519, ECDSA or RSA) that verifies tokens.
	// Empty: a development Ed25519 key is created in data_dir on first run; allowed only
	// in simulation mode.
	PublicKeyFile string `yaml:"public_key_file"`
	// ServiceKeyFile is the fabric's own Ed25519 private key (PEM, PKCS #8; e.g.
	// `openssl genpkey -algorithm ed25519`), shared by its services: they sign the tokens
	// they call each other with (role service only), such as the coordinator relaying
	// audit events. Outside simulation without it, services forward the caller's token
	// and service-only calls (audit appends) wait in the coordinator's outbox. In
	// simulation the development key serves. Env FABRIC_SERVICE_KEY_FILE.
	ServiceKeyFile string `yaml:"service_key_file"`
}

// Integrations are the external systems named by the spec's environment variables.
type Integrations struct {
	PostgresDSN       Secret `yaml:"postgres_dsn"`        // POSTGRES_DSN; empty = embedded SQLite
	VaultAddr         string `yaml:"vault_addr"`          // VAULT_ADDR
	CosignKeyPath     string `yaml:"cosign_key_path"`     // COSIGN_KEY_PATH
	GlobalRegistryURL string `yaml:"global_registry_url"` // GLOBAL_REGISTRY_URL
	FederationToken   Secret `yaml:"federation_token"`    // FEDERATION_TOKEN
	RedisURL          Secret `yaml:"redis_url"`           // REDIS_URL (may carry a password)
	KafkaURL          Secret `yaml:"kafka_url"`           // KAFKA_URL (may carry SASL credentials)
	PromURL           string `yaml:"prom_url"`            // PROM_URL
	NeuralFabricURL   string `yaml:"neural_fabric_url"`   // NEURAL_FABRIC_URL
	QuantumProvider   string `yaml:"quantum_provider"`    // QUANTUM_PROVIDER
	// Vault says which keys are read from Vault (VAULT_ADDR) instead of files.
	Vault VaultKeys `yaml:"vault"`
}

// VaultKeys are the fabric's keys kept in Vault's KV v2 engine (internal/vault,
// docs/security.md "Keys in Vault"), read at start when VAULT_ADDR is set. Each path
// left empty keeps that key in its file; a path set replaces the file setting, which
// must then be empty. The token is VAULT_TOKEN, else the content of TokenFile.
type VaultKeys struct {
	// TokenFile holds the Vault token when VAULT_TOKEN is unset (VAULT_TOKEN_FILE).
	TokenFile string `yaml:"token_file"`
	// KVMount is the KV v2 engine's mount path; empty = "secret".
	KVMount string `yaml:"kv_mount"`
	// ServiceKeyPath holds the service key (field "key": PEM Ed25519, PKCS #8), in
	// place of auth.service_key_file.
	ServiceKeyPath string `yaml:"service_key_path"`
	// CosignKeyPath holds the manifest signing key (field "key": the cosign PEM;
	// field "password": its password, else COSIGN_PASSWORD), in place of
	// integrations.cosign_key_path.
	CosignKeyPath string `yaml:"cosign_key_path"`
	// MFAKeyPath holds the HIL MFA sealing key (field "key": base64 of 32 bytes), in
	// place of hil.mfa_key_file.
	MFAKeyPath string `yaml:"mfa_key_path"`
}

// Any reports whether any key is read from Vault.
func (v VaultKeys) Any() bool {
	return v.ServiceKeyPath != "" || v.CosignKeyPath != "" || v.MFAKeyPath != ""
}

// Executor sends one tenant's enactments to its own webhook instead of the simulated
// world (see internal/world.Webhook for the protocol).
type Executor struct {
	// WebhookURL receives the signed read/plan/apply/restore requests.
	WebhookURL string `yaml:"webhook_url"`
	// SecretEnv names the environment variable holding the HMAC secret (never the
	// secret itself, which must not sit in a config file).
	SecretEnv string `yaml:"secret_env"`
}

// Audit configures where the decision auditor publishes its signed checkpoints
// outside the database (docs/operations.md, "Audit checkpoints and witness").
type Audit struct {
	// CheckpointFile is the append-only file every signed checkpoint is appended to
	// (fsync'd); empty is <data_dir>/audit/checkpoints, "-" turns it off. The auditor
	// refuses to start when its store is behind the last checkpoint in it.
	CheckpointFile string `yaml:"checkpoint_file"`
	// WitnessURL is a witness (`fabric witness serve`) that cosigns each checkpoint
	// when it is consistent with the last one it cosigned; empty: none.
	WitnessURL string `yaml:"witness_url"`
	// WitnessKeyFile is the witness's note verifier key (its witness.pub), required
	// with witness_url: the auditor checks every cosignature it receives.
	WitnessKeyFile string `yaml:"witness_key_file"`
	// SimulatedWitness runs a witness in the auditor's process (simulation only), with
	// its key and state in <data_dir>/witness; for trying the flow, not for
	// protection (it shares the auditor's host).
	SimulatedWitness bool `yaml:"simulated_witness"`
}

// AuditCheckpointFile is Audit.CheckpointFile resolved: "" when off.
func (c Config) AuditCheckpointFile() string {
	switch c.Audit.CheckpointFile {
	case "-":
		return ""
	case "":
		return filepath.Join(c.DataDir, "audit", "checkpoints")
	}
	return c.Audit.CheckpointFile
}

// Telemetry configures logs and traces.
type Telemetry struct {
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is json or text.
	LogFormat string `yaml:"log_format"`
	// OTLPEndpoint (host:port) turns on the OTLP/gRPC trace exporter; also read from
	// OTEL_EXPORTER_OTLP_ENDPOINT. Empty: traces are created (ids reach logs and the
	// audit log) but not exported.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
}

// Config is the whole configuration.
type Config struct {
	// Target is "all" or one service name; see `fabric -list-targets`.
	Target string `yaml:"target"`
	// DataDir holds the embedded database and the development keys (created 0700).
	DataDir string `yaml:"data_dir"`
	// StoreDir, when set, holds the embedded (SQLite) database instead of data_dir: a
	// service given its own folder (or its own POSTGRES_DSN) owns its own database,
	// e.g. the decision auditor's audit log apart from the coordinator's proposals.
	// Also FABRIC_STORE_DIR.
	StoreDir string `yaml:"store_dir"`
	// ReportsDir receives the precheck report.
	ReportsDir string `yaml:"reports_dir"`
	// SimulationMode is "" (decided by the precheck), "true" or "false" (SIMULATION_MODE).
	SimulationMode string `yaml:"simulation_mode"`
	// DecisionTimeoutMS bounds a negotiation (PHASE_I4_DECISION_TIMEOUT_MS, P6).
	DecisionTimeoutMS int64 `yaml:"decision_timeout_ms"`
	// PolicyFile is the decision policy (docs/policies/decision_policy.md); empty uses
	// the built-in policies/default.yaml.
	PolicyFile string `yaml:"policy_file"`
	// RegionsFile configures the negotiator's regions and their simulated agents
	// (services/federated-negotiator/negotiator/regions.yaml); empty uses that default.
	RegionsFile string `yaml:"regions_file"`
	// RegionKeysDir is the region key registry (internal/regionkeys): a folder with one
	// "<region>.pub" file (PEM "PUBLIC KEY", Ed25519) per region, the keys that verify
	// the regions' votes in quorum certificates. Required outside simulation; in
	// simulation empty derives the keys from the negotiator's seed in data_dir.
	// Also FABRIC_REGION_KEYS_DIR.
	RegionKeysDir string `yaml:"region_keys_dir"`
	// TrustedKeys are PEM public keys (cosign.pub files) whose manifest and consent
	// signatures the coordinator accepts (P2), besides the fabric's own signing key.
	TrustedKeys []string `yaml:"trusted_keys"`
	// Executors maps a tenant id to its webhook executor; tenants not listed use the
	// simulated world.
	Executors map[string]Executor `yaml:"executors"`
	// MaxRequestBytes caps a REST body and a gRPC message.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// GCPercent is the Go garbage collector's target (what GOGC sets), applied at
	// start unless the GOGC environment variable is set: 200 by default, trading a
	// larger heap for less collection work (docs/operations.md); 100 is Go's default.
	GCPercent int `yaml:"gc_percent"`
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Services maps each service name to its addresses; unknown names are errors.
	Services map[string]Listen `yaml:"services"`
	// Auth configures token verification.
	Auth Auth `yaml:"auth"`
	// Integrations are the external systems.
	Integrations Integrations `yaml:"integrations"`
	// Telemetry configures logs and traces.
	Telemetry Telemetry `yaml:"telemetry"`
	// Admission bounds each service's concurrent and queued work and each tenant's
	// share of it.
	Admission Admission `yaml:"admission"`
	// Engine tunes the coordinator's lifecycle engine (docs/architecture.md).
	Engine Engine `yaml:"engine"`
	// Audit configures checkpoint publication and the witness.
	Audit Audit `yaml:"audit"`
	// HIL configures the hil-gateway: notification channels, chat identities, approver
	// keys, the approval page's address.
	HIL HIL `yaml:"hil"`
	// Federation runs regions as processes (federation.go).
	Federation Federation `yaml:"federation"`
	// Canary configures the judgement of canary rollouts (canary.go).
	Canary Canary `yaml:"canary"`
	// Events configures the publication of lifecycle events to Kafka (docs/events.md).
	Events Events `yaml:"events"`
}

// DefaultKafkaTopic is the topic lifecycle events go to unless events.kafka_topic says.
const DefaultKafkaTopic = "decision-fabric.lifecycle"

// Events configures the coordinator's lifecycle event relay: on when KAFKA_URL is set.
type Events struct {
	// KafkaTopic is the topic (default DefaultKafkaTopic).
	KafkaTopic string `yaml:"kafka_topic"`
}

// validate checks the topic name as Kafka does: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
func (e Events) validate() error {
	t := e.KafkaTopic
	ok := t != "" && len(t) <= 249 && t != "." && t != ".."
	for _, c := range t {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("events.kafka_topic %q: want 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'", t)
	}
	return nil
}

// HIL configures the human-in-loop gateway (docs/operations.md, "Approvals").
type HIL struct {
	// PublicURL is the approval page's address as approvers reach it, used in links
	// in notifications (default http://127.0.0.1:<hil-gateway HTTP port>/ui).
	PublicURL string `yaml:"public_url"`
	// Channels are the notification channels in order: the first is notified of every
	// request and reminder, the second receives the escalation before the deadline.
	// Each is "simulated", "smtp", "slack" or "telegram"; default ["simulated"].
	Channels []string `yaml:"channels"`
	// SMTP is the e-mail channel.
	SMTP SMTP `yaml:"smtp"`
	// Slack is the Slack channel (a bot token with chat:write; interactivity pointed at
	// <public address>/hil/slack/interactions).
	Slack Slack `yaml:"slack"`
	// Telegram is the Telegram channel (webhook at <public address>/hil/telegram/webhook).
	Telegram Telegram `yaml:"telegram"`
	// ChatUsers maps a chat identity ("slack:U0123", "telegram:123456") to the approver
	// it stands for: a vote from chat counts as that approver's, after their TOTP code.
	ChatUsers map[string]ChatUser `yaml:"chat_users"`
	// ApproverKeysDir holds each approver's public key as <subject>.pub (PEM; cosign or
	// Ed25519): approvals are signed over the manifest digest with it.
	ApproverKeysDir string `yaml:"approver_keys_dir"`
	// RequireSignature refuses approvals without the approver's signature; default on
	// outside simulation, off in it.
	RequireSignature *bool `yaml:"require_signature"`
	// DeliveryLease is how long a notification being sent is held by one deliverer
	// (default 30s): after a crash it is retried once this has passed.
	DeliveryLease Duration `yaml:"delivery_lease"`
	// MFAKeyFile holds the 32-byte key TOTP secrets are sealed with; default
	// <data_dir>/keys/mfa.key, created on first use in simulation only.
	MFAKeyFile string `yaml:"mfa_key_file"`
	// WebAuthn is the WebAuthn second factor (docs/operations.md); off when its RPID is
	// empty.
	WebAuthn WebAuthn `yaml:"webauthn"`
}

// WebAuthn configures the hil-gateway's WebAuthn relying party: approvers may register
// an authenticator and vote with its assertion instead of a TOTP code. Off when RPID is
// empty.
type WebAuthn struct {
	// RPID is the relying party ID: the host name of the site approvers use
	// ("approvals.example"), never a URL, port or IP address. Credentials are bound
	// to it: changing it orphans every registered authenticator.
	RPID string `yaml:"rp_id"`
	// RPDisplayName is shown by authenticators at registration (default "Decision
	// Fabric").
	RPDisplayName string `yaml:"rp_display_name"`
	// RPOrigins are the origins the ceremonies may run at: https://<RPID or a
	// subdomain>[:port], or http://localhost[:port] for development.
	RPOrigins []string `yaml:"rp_origins"`
}

// Enabled reports whether WebAuthn is configured.
func (w WebAuthn) Enabled() bool { return w.RPID != "" }

// Validate checks the relying party: RPID a host name, each origin an absolute https
// URL on RPID or a subdomain of it (or http://localhost for development).
func (w WebAuthn) Validate() error {
	if w.RPID == "" {
		if len(w.RPOrigins) > 0 || w.RPDisplayName != "" {
			return errors.New("hil.webauthn.rp_id: required with rp_origins and rp_display_name (WebAuthn is off while it is empty)")
		}
		return nil
	}
	if !validHostName(w.RPID) {
		return fmt.Errorf("hil.webauthn.rp_id %q: want a host name in lower case (\"approvals.example\"), not a URL, a port or an IP address", w.RPID)
	}
	if len(w.RPOrigins) == 0 {
		return fmt.Errorf("hil.webauthn.rp_origins: required with rp_id (e.g. [\"https://%s\"])", w.RPID)
	}
	if len(w.RPDisplayName) > 64 {
		return errors.New("hil.webauthn.rp_display_name: at most 64 bytes")
	}
	for _, o := range w.RPOrigins {
		if err := validOrigin(o, w.RPID); err != nil {
			return fmt.Errorf("hil.webauthn.rp_origins: %q: %w", o, err)
		}
	}
	return nil
}

// validHostName reports whether h is a DNS host name in lower case (letters, digits,
// hyphens; labels of 1 to 63 characters, not starting or ending with a hyphen), not an
// IP address.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 || net.ParseIP(h) != nil {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	// The last label of a name is never all digits ("1.2.3.999" is no host name).
	last := h[strings.LastIndexByte(h, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// validOrigin checks one WebAuthn origin against the RP ID.
func validOrigin(o, rpID string) error {
	u, err := url.Parse(o)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("want an absolute https URL (https://host[:port])")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || (u.Path != "" && u.Path != "/"):
		return errors.New("an origin is scheme://host[:port] only: no user, path, query or fragment")
	case u.Hostname() == "":
		return errors.New("no host")
	case u.Scheme == "http" && u.Hostname() != "localhost":
		return errors.New("plain http only for http://localhost (development); use https")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("bad port")
		}
	}
	host := u.Hostname()
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return fmt.Errorf("its host must be rp_id %q or a subdomain of it", rpID)
	}
	return nil
}

// SMTP is the e-mail notification channel.
type SMTP struct {
	Host        string   `yaml:"host"`
	Port        int      `yaml:"port"`
	From        string   `yaml:"from"`
	To          []string `yaml:"to"`
	Username    string   `yaml:"username"`
	PasswordEnv string   `yaml:"password_env"` // names the variable holding the password
	TLS         string   `yaml:"tls"`          // "starttls" (default), "tls" or "none" (loopback only)
}

// Slack is the Slack notification channel.
type Slack struct {
	ChannelID        string `yaml:"channel_id"`
	TokenEnv         string `yaml:"token_env"`          // names the variable holding the bot token
	SigningSecretEnv string `yaml:"signing_secret_env"` // names the variable holding the signing secret
	APIURL           string `yaml:"api_url"`            // default Slack's
}

// Telegram is the Telegram notification channel.
type Telegram struct {
	ChatID           int64  `yaml:"chat_id"`
	TokenEnv         string `yaml:"token_env"`          // names the variable holding the bot token
	WebhookSecretEnv string `yaml:"webhook_secret_env"` // names the variable holding the webhook secret token
	ServerURL        string `yaml:"server_url"`         // default Telegram's
}

// ChatUser is the approver a chat identity stands for.
type ChatUser struct {
	Subject string   `yaml:"subject"`
	Tenant  string   `yaml:"tenant"`
	Roles   []string `yaml:"roles"`
	Groups  []string `yaml:"groups"`
}

// Default returns the built-in defaults: all seven services on their spec ports, an
// embedded store in ./data, simulation decided by the precheck.
func Default() Config {
	c := Config{
		Target:            "all",
		DataDir:           "data",
		ReportsDir:        "reports",
		DecisionTimeoutMS: policy.DefaultDecisionTimeout.Milliseconds(),
		MaxRequestBytes:   1 << 20,
		GCPercent:         200,
		ShutdownTimeout:   Duration(10 * time.Second),
		Services:          map[string]Listen{},
		Auth:              Auth{Issuer: "decision-fabric", Audience: "decision-fabric"},
		Integrations:      Integrations{QuantumProvider: ""},
		Telemetry:         Telemetry{LogLevel: "info", LogFormat: "json"},
		Admission:         DefaultAdmission(),
		Events:            Events{KafkaTopic: DefaultKafkaTopic},
	}
	for _, s := range fabric.Services {
		c.Services[s.Name] = Listen{
			HTTPAddr: fmt.Sprintf(":%d", s.Ports.HTTP),
			GRPCAddr: fmt.Sprintf(":%d", s.Ports.GRPC),
		}
	}
	return c
}

// Load reads defaults, then the YAML file at path (skipped when path is ""), then the
// environment through lookup (os.LookupEnv in production), and validates the result.
func Load(path string, lookup func(string) (string, bool)) (Config, error) {
	return LoadTarget(path, lookup, "", "")
}

// LoadTarget is Load for a process that serves defaultTarget unless the file or the
// environment names another, and target above all (a -target flag). The result is
// validated once, for the target it will serve.
func LoadTarget(path string, lookup func(string) (string, bool), defaultTarget, target string) (Config, error) {
	c := Default()
	if defaultTarget != "" {
		c.Target = defaultTarget
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := c.decodeYAML(raw); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := c.applyEnv(lookup); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if target != "" {
		c.Target = target
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// decodeYAML overlays raw onto c. Unknown keys are errors; service entries given in the
// file are merged over the defaults field by field.
func (c *Config) decodeYAML(raw []byte) error {
	defaults := c.Services
	c.Services = nil
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	merged := defaults
	for name, l := range c.Services {
		if !fabric.IsService(name) {
			return fmt.Errorf("services: unknown service %q (known: %s)", name, strings.Join(fabric.Names(), ", "))
		}
		d := merged[name]
		if l.HTTPAddr != "" {
			d.HTTPAddr = l.HTTPAddr
		}
		if l.GRPCAddr != "" {
			d.GRPCAddr = l.GRPCAddr
		}
		if l.Dial != "" {
			d.Dial = l.Dial
		}
		merged[name] = d
	}
	c.Services = merged
	return nil
}

// applyEnv overrides fields from the spec's environment variables.
func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	if lookup == nil {
		return nil
	}
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok {
			*dst = v
		}
	}
	sec := func(name string, dst *Secret) {
		if v, ok := lookup(name); ok {
			*dst = Secret(v)
		}
	}
	sec(precheck.EnvPostgresDSN, &c.Integrations.PostgresDSN)
	str(precheck.EnvVaultAddr, &c.Integrations.VaultAddr)
	str(precheck.EnvCosignKeyPath, &c.Integrations.CosignKeyPath)
	str(precheck.EnvGlobalRegistryURL, &c.Integrations.GlobalRegistryURL)
	sec(precheck.EnvFederationToken, &c.Integrations.FederationToken)
	sec(precheck.EnvRedisURL, &c.Integrations.RedisURL)
	sec(precheck.EnvKafkaURL, &c.Integrations.KafkaURL)
	str(precheck.EnvPromURL, &c.Integrations.PromURL)
	str(precheck.EnvNeuralFabricURL, &c.Integrations.NeuralFabricURL)
	str(precheck.EnvQuantumProvider, &c.Integrations.QuantumProvider)
	str(precheck.EnvSimulationMode, &c.SimulationMode)
	str("OTEL_EXPORTER_OTLP_ENDPOINT", &c.Telemetry.OTLPEndpoint)
	str("FABRIC_DATA_DIR", &c.DataDir)
	str("FABRIC_EVENTS_KAFKA_TOPIC", &c.Events.KafkaTopic)
	str("FABRIC_STORE_DIR", &c.StoreDir)
	str("FABRIC_LOG_LEVEL", &c.Telemetry.LogLevel)
	str("FABRIC_POLICY_FILE", &c.PolicyFile)
	str("FABRIC_REGION_KEYS_DIR", &c.RegionKeysDir)
	str("FABRIC_SERVICE_KEY_FILE", &c.Auth.ServiceKeyFile)
	str("VAULT_TOKEN_FILE", &c.Integrations.Vault.TokenFile)
	if v, ok := lookup(precheck.EnvDecisionTimeoutMS); ok && v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return fmt.Errorf("%s=%q: want a positive number of milliseconds", precheck.EnvDecisionTimeoutMS, v)
		}
		c.DecisionTimeoutMS = ms
	}
	return nil
}

// Validate reports the first invalid setting, naming the key and what is expected.
func (c Config) Validate() error {
	if c.Target != "all" && !fabric.IsService(c.Target) {
		return fmt.Errorf("target %q: want \"all\" or one of %s", c.Target, strings.Join(fabric.Names(), ", "))
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if err := c.validateVault(); err != nil {
		return err
	}
	switch strings.ToLower(c.SimulationMode) {
	case "", "true", "false", "1", "0":
	default:
		return fmt.Errorf("simulation_mode %q: want true, false or empty (decided by the precheck)", c.SimulationMode)
	}
	if limit := policy.MaxDecisionTimeout.Milliseconds(); c.DecisionTimeoutMS <= 0 || c.DecisionTimeoutMS > limit {
		return fmt.Errorf("decision_timeout_ms %d: want 1..%d (P6)", c.DecisionTimeoutMS, limit)
	}
	if c.GCPercent < 50 || c.GCPercent > 1000 {
		return fmt.Errorf("gc_percent %d: want 50..1000", c.GCPercent)
	}
	if c.MaxRequestBytes < 1024 || c.MaxRequestBytes > 64<<20 {
		return fmt.Errorf("max_request_bytes %d: want 1024..67108864", c.MaxRequestBytes)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown_timeout: must be positive")
	}
	if err := c.Events.validate(); err != nil {
		return err
	}
	seen := map[string]string{}
	for _, name := range fabric.Names() {
		l := c.Services[name]
		for _, a := range []struct{ key, addr string }{{"http_addr", l.HTTPAddr}, {"grpc_addr", l.GRPCAddr}} {
			_, port, err := net.SplitHostPort(a.addr)
			if err != nil {
				return fmt.Errorf("services.%s.%s %q: want host:port", name, a.key, a.addr)
			}
			if port == "0" {
				continue // an ephemeral port never clashes
			}
			if other, dup := seen[a.addr]; dup && c.runs(name) && c.runs(other) {
				return fmt.Errorf("services.%s.%s %q: also used by %s", name, a.key, a.addr, other)
			}
			seen[a.addr] = name
		}
	}
	switch c.Telemetry.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("telemetry.log_level %q: want debug, info, warn or error", c.Telemetry.LogLevel)
	}
	switch c.Telemetry.LogFormat {
	case "json", "text":
	default:
		return fmt.Errorf("telemetry.log_format %q: want json or text", c.Telemetry.LogFormat)
	}
	for tenant, e := range c.Executors {
		u, err := url.Parse(e.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("executors.%s.webhook_url %q: want an http(s) URL", tenant, e.WebhookURL)
		}
		if e.SecretEnv == "" {
			return fmt.Errorf("executors.%s.secret_env: name the environment variable holding the HMAC secret", tenant)
		}
	}
	if c.Auth.Issuer == "" || c.Auth.Audience == "" {
		return errors.New("auth.issuer and auth.audience: must not be empty")
	}
	if c.Audit.WitnessURL != "" {
		if u, err := url.Parse(c.Audit.WitnessURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("audit.witness_url %q: want an http(s) URL", c.Audit.WitnessURL)
		}
		if c.Audit.WitnessKeyFile == "" {
			return errors.New("audit.witness_key_file: required with audit.witness_url (the witness's witness.pub)")
		}
		if c.Audit.SimulatedWitness {
			return errors.New("audit.simulated_witness: not with audit.witness_url")
		}
	}
	if err := c.HIL.Validate(); err != nil {
		return err
	}
	if err := c.Canary.Validate(); err != nil {
		return err
	}
	if err := c.Federation.Validate(c.Integrations.GlobalRegistryURL); err != nil {
		return err
	}
	if sim := strings.ToLower(c.SimulationMode); sim == "false" || sim == "0" {
		// Production is demanded: this region's listener must not take the federation
		// token in cleartext. The registry's endpoints (and an undecided
		// simulation_mode) are checked at start, once the precheck has decided.
		if _, err := c.Federation.CheckTransport(false, c.Federation.RegionEndpoints()...); err != nil {
			return err
		}
	}
	return c.Admission.Validate()
}

// Validate checks the hil-gateway's channel list, chat identities and WebAuthn relying
// party.
func (h HIL) Validate() error {
	seen := map[string]bool{}
	for _, ch := range h.Channels {
		switch ch {
		case "simulated", "smtp", "slack", "telegram":
		default:
			return fmt.Errorf("hil.channels: unknown channel %q (simulated, smtp, slack, telegram)", ch)
		}
		if seen[ch] {
			return fmt.Errorf("hil.channels: %q listed twice", ch)
		}
		seen[ch] = true
	}
	for id, u := range h.ChatUsers {
		if !strings.HasPrefix(id, "slack:") && !strings.HasPrefix(id, "telegram:") {
			return fmt.Errorf("hil.chat_users: %q: want \"slack:<user id>\" or \"telegram:<user id>\"", id)
		}
		if u.Subject == "" || u.Tenant == "" {
			return fmt.Errorf("hil.chat_users: %q: subject and tenant are required", id)
		}
	}
	return h.WebAuthn.Validate()
}

// runs reports whether the target includes the service.
func (c Config) runs(name string) bool { return c.Target == "all" || c.Target == name }

// DecisionTimeout is DecisionTimeoutMS as a duration.
func (c Config) DecisionTimeout() time.Duration {
	return time.Duration(c.DecisionTimeoutMS) * time.Millisecond
}

// Redacted renders the effective configuration as YAML with every secret shown as
// "<REDACTED>", for `fabric -print-config`.
func (c Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(out)
}

// Engine tunes the coordinator's lifecycle engine, which moves proposals through
// negotiation and scoring in the background.
type Engine struct {
	// Lease is how long a coordinator's claim on a proposal lasts without renewal
	// (default 15s): after a crash another coordinator takes its proposals over
	// within about this long.
	Lease Duration `yaml:"lease"`
	// Sweep is how often each coordinator looks for unclaimed proposals (default 1s).
	Sweep Duration `yaml:"sweep"`
}

// validateVault refuses Vault key paths without VAULT_ADDR, and a key configured both
// in Vault and in a file (which one is meant would be a guess).
func (c Config) validateVault() error {
	v := c.Integrations.Vault
	if !v.Any() {
		return nil
	}
	if c.Integrations.VaultAddr == "" {
		return errors.New("integrations.vault: key paths are set but integrations.vault_addr (VAULT_ADDR) is not")
	}
	for _, both := range []struct {
		vault, file string
		vaultKey    string
		fileKey     string
	}{
		{v.ServiceKeyPath, c.Auth.ServiceKeyFile, "integrations.vault.service_key_path", "auth.service_key_file"},
		{v.CosignKeyPath, c.Integrations.CosignKeyPath, "integrations.vault.cosign_key_path", "integrations.cosign_key_path (COSIGN_KEY_PATH)"},
		{v.MFAKeyPath, c.HIL.MFAKeyFile, "integrations.vault.mfa_key_path", "hil.mfa_key_file"},
	} {
		if both.vault != "" && both.file != "" {
			return fmt.Errorf("%s and %s are both set: keep the key in one place", both.vaultKey, both.fileKey)
		}
	}
	return nil
}
