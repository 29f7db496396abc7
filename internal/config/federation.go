package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Federation runs regions as processes (docs/operations.md, "Federation"): a region
// process answers other negotiators' vote requests for its own region (Region), and a
// coordinating negotiator asks the regions of its registry over gRPC instead of its
// simulated in-process agents (Enabled). Both authenticate with FEDERATION_TOKEN
// (integrations.federation_token) and, when TLS is set, mutual TLS.
type Federation struct {
	// Enabled makes this negotiator coordinate with the regions of the registry: every
	// negotiation asks them over gRPC, and their registry keys verify the votes. The
	// registry is GLOBAL_REGISTRY_URL when set, RegistryFile otherwise. Off: the
	// simulated regions of regions_file.
	Enabled bool `yaml:"enabled"`
	// RegistryFile is the registry as a JSON file (internal/federation), used when
	// GLOBAL_REGISTRY_URL is not set.
	RegistryFile string `yaml:"registry_file"`
	// Region, when its name is set, makes this process a region: it serves
	// RegionService on Region.GRPCAddr and votes with its own key and limits.
	Region FederationRegion `yaml:"region"`
	// TLS turns on mutual TLS between regions (all three files, or none).
	TLS FederationTLS `yaml:"tls"`
	// AllowInsecure lets a production federation (not simulation) send
	// FEDERATION_TOKEN in cleartext: plain gRPC to or from an address that is not
	// loopback. Off, such a federation refuses to start (set TLS). A warning is
	// logged at start when it is used.
	AllowInsecure bool `yaml:"allow_insecure"`
}

// FederationRegion is this process's own region: its name, key, listener and real limits.
type FederationRegion struct {
	// Name is the region (as in the registry).
	Name string `yaml:"name"`
	// KeyFile is the region's Ed25519 private key (PEM PKCS #8, e.g. `openssl genpkey
	// -algorithm ed25519`); its public key must be the registry's for Name.
	KeyFile string `yaml:"key_file"`
	// GRPCAddr is where RegionService listens (its own port: federation token and
	// mTLS, not the API's JWTs).
	GRPCAddr string `yaml:"grpc_addr"`
	// AllowedActions are the actions the region accepts; any other is rejected.
	// Empty: the actions of the fabric's catalogue (internal/actions).
	AllowedActions []string `yaml:"allowed_actions"`
	// MaxReplicas is the most replicas a change may ask of the region; above it the
	// region rejects. 0: the catalogue's limit.
	MaxReplicas int64 `yaml:"max_replicas"`
	// Capacity is the replicas the region can run now; above it (and within
	// MaxReplicas) the region counter-offers the capacity. 0: no limit.
	Capacity int64 `yaml:"capacity"`
	// CostCeiling is the most the region spends per month (0: none), ReplicaCost the
	// monthly cost of one replica (0: unknown), in Currency.
	CostCeiling float64 `yaml:"cost_ceiling"`
	ReplicaCost float64 `yaml:"replica_cost"`
	Currency    string  `yaml:"currency"`
	// VoteDelay is TEST-ONLY: every vote is delayed this long (a region slower than the
	// deadline abstains). Leave 0 in production.
	VoteDelay Duration `yaml:"vote_delay"`
}

// FederationTLS are the PEM files of mutual TLS between regions.
type FederationTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

// maxVoteDelay bounds the test-only delay.
const maxVoteDelay = 10 * time.Minute

// Validate checks the federation settings.
func (f Federation) Validate(registryURL string) error {
	if f.Enabled && registryURL == "" && f.RegistryFile == "" {
		return errors.New("federation.enabled: set GLOBAL_REGISTRY_URL or federation.registry_file")
	}
	t := f.TLS
	if n := btoi(t.CertFile != "") + btoi(t.KeyFile != "") + btoi(t.CAFile != ""); n != 0 && n != 3 {
		return errors.New("federation.tls: cert_file, key_file and ca_file are all required (or none)")
	}
	r := f.Region
	if r.Name == "" {
		if r.KeyFile != "" || r.GRPCAddr != "" {
			return errors.New("federation.region.name: required with federation.region.key_file or grpc_addr")
		}
		return nil
	}
	if r.KeyFile == "" {
		return errors.New("federation.region.key_file: required: the region's Ed25519 private key (PEM)")
	}
	if _, _, err := net.SplitHostPort(r.GRPCAddr); err != nil {
		return fmt.Errorf("federation.region.grpc_addr %q: want host:port", r.GRPCAddr)
	}
	if r.MaxReplicas < 0 || r.Capacity < 0 {
		return errors.New("federation.region: max_replicas and capacity: want >= 0")
	}
	if r.VoteDelay < 0 || time.Duration(r.VoteDelay) > maxVoteDelay {
		return fmt.Errorf("federation.region.vote_delay: want 0..%s (test-only)", maxVoteDelay)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CheckTransport decides whether the federation token may travel to or from
// endpoints (host:port of regions dialled, or this region's listener). With TLS set,
// or in simulation (kept as it always was), anything goes. Otherwise every endpoint
// must be loopback (IsLoopback): the token on plain gRPC never leaves the host. A
// federation with other plain endpoints is refused with an error naming them and the
// fix (federation.tls), unless AllowInsecure: then those endpoints are returned, for
// the caller to warn about once. The token itself is never part of the answer.
func (f Federation) CheckTransport(simulation bool, endpoints ...string) ([]string, error) {
	if simulation || f.TLS.Enabled() {
		return nil, nil
	}
	var plain []string
	for _, ep := range endpoints {
		if !IsLoopback(ep) {
			plain = append(plain, ep)
		}
	}
	if len(plain) == 0 {
		return nil, nil
	}
	if f.AllowInsecure {
		return plain, nil
	}
	return nil, fmt.Errorf("federation: FEDERATION_TOKEN would cross the network in cleartext (plain gRPC, %s): "+
		"set federation.tls (cert_file, key_file, ca_file) for mutual TLS, or federation.allow_insecure: true "+
		"to accept it knowingly (loopback endpoints need neither)", strings.Join(plain, ", "))
}

// IsLoopback reports whether host:port (or a bare host) stays on this host: localhost,
// 127.0.0.0/8 or ::1. An empty host or an unspecified address (":9403", "0.0.0.0")
// listens on every interface and is not loopback; no name other than localhost is
// resolved (a DNS answer is not trusted here).
func IsLoopback(endpoint string) bool {
	host := endpoint
	if h, _, err := net.SplitHostPort(endpoint); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Enabled reports whether any TLS file is set (Validate demands all three then).
func (t FederationTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// RegionEndpoints are the endpoints of this process's own region listener (none
// without federation.region).
func (f Federation) RegionEndpoints() []string {
	if f.Region.Name == "" {
		return nil
	}
	return []string{f.Region.GRPCAddr}
}
