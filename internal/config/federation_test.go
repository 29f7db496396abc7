package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFederationValidate(t *testing.T) {
	region := FederationRegion{Name: "eu-west", KeyFile: "eu-west.key", GRPCAddr: ":9403"}
	ok := map[string]struct {
		f   Federation
		url string
	}{
		"off":              {Federation{}, ""},
		"registry file":    {Federation{Enabled: true, RegistryFile: "registry.json"}, ""},
		"registry url":     {Federation{Enabled: true}, "https://registry.example/regions.json"},
		"region":           {Federation{Region: region}, ""},
		"region + coord":   {Federation{Enabled: true, RegistryFile: "r.json", Region: region}, ""},
		"tls, all 3 files": {Federation{TLS: FederationTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"}}, ""},
		"test-only delay":  {Federation{Region: FederationRegion{Name: "a", KeyFile: "k", GRPCAddr: ":1", VoteDelay: Duration(time.Second)}}, ""},
	}
	for name, c := range ok {
		require.NoError(t, c.f.Validate(c.url), name)
	}
	bad := map[string]struct {
		f    Federation
		want string
	}{
		"enabled without registry": {Federation{Enabled: true}, "GLOBAL_REGISTRY_URL or federation.registry_file"},
		"tls partial":              {Federation{TLS: FederationTLS{CertFile: "c"}}, "all required"},
		"region without name":      {Federation{Region: FederationRegion{KeyFile: "k"}}, "federation.region.name"},
		"region without key":       {Federation{Region: FederationRegion{Name: "a", GRPCAddr: ":1"}}, "key_file"},
		"region without addr":      {Federation{Region: FederationRegion{Name: "a", KeyFile: "k"}}, "grpc_addr"},
		"negative max":             {Federation{Region: FederationRegion{Name: "a", KeyFile: "k", GRPCAddr: ":1", MaxReplicas: -1}}, "max_replicas"},
		"negative delay":           {Federation{Region: FederationRegion{Name: "a", KeyFile: "k", GRPCAddr: ":1", VoteDelay: -1}}, "vote_delay"},
	}
	for name, c := range bad {
		require.ErrorContains(t, c.f.Validate(""), c.want, name)
	}
}

// The attacker on the path between two regions: without TLS the federation token
// travels as a plain gRPC header. Outside simulation a remote plain endpoint is
// refused unless federation.allow_insecure says so; TLS or loopback is fine.
func TestFederationTransport(t *testing.T) {
	tlsFiles := FederationTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"}
	remote := []string{"127.0.0.1:9401", "10.0.0.7:9403"}

	_, err := Federation{}.CheckTransport(false, remote...)
	require.ErrorContains(t, err, "10.0.0.7:9403")
	require.ErrorContains(t, err, "set federation.tls")
	require.NotContains(t, err.Error(), "127.0.0.1:9401")
	for _, ep := range []string{"region.example:9403", ":9403", "0.0.0.0:9403", "[::]:9403", "[2001:db8::1]:9403", "localhost.evil.example:1"} {
		_, err := Federation{}.CheckTransport(false, ep)
		require.ErrorContains(t, err, "set federation.tls", ep)
	}

	for name, c := range map[string]struct {
		f          Federation
		simulation bool
		eps        []string
		warn       []string
	}{
		"tls":            {Federation{TLS: tlsFiles}, false, remote, nil},
		"simulation":     {Federation{}, true, remote, nil},
		"loopback only":  {Federation{}, false, []string{"127.0.0.1:1", "127.9.9.9:2", "[::1]:3", "localhost:4", "LOCALHOST:5"}, nil},
		"none":           {Federation{}, false, nil, nil},
		"allow_insecure": {Federation{AllowInsecure: true}, false, remote, []string{"10.0.0.7:9403"}},
	} {
		warn, err := c.f.CheckTransport(c.simulation, c.eps...)
		require.NoError(t, err, name)
		require.Equal(t, c.warn, warn, name)
	}
}

// A production configuration (simulation_mode false) whose region listens on every
// interface without TLS is refused at load, naming the fix.
func TestConfigRefusesPlainFederationInProduction(t *testing.T) {
	prod := func(mut func(c *Config)) Config {
		c := Default()
		c.SimulationMode = "false"
		c.Federation.Region = FederationRegion{Name: "eu-west", KeyFile: "eu-west.key", GRPCAddr: "0.0.0.0:9403"}
		mut(&c)
		return c
	}
	require.ErrorContains(t, prod(func(*Config) {}).Validate(), "federation.tls")
	require.NoError(t, prod(func(c *Config) { c.Federation.AllowInsecure = true }).Validate())
	require.NoError(t, prod(func(c *Config) { c.Federation.TLS = FederationTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"} }).Validate())
	require.NoError(t, prod(func(c *Config) { c.Federation.Region.GRPCAddr = "127.0.0.1:9403" }).Validate())
	require.NoError(t, prod(func(c *Config) { c.SimulationMode = "true" }).Validate())
	require.NoError(t, prod(func(c *Config) { c.SimulationMode = "" }).Validate(), "decided at start, after the precheck")
}
