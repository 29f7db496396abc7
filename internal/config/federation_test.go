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
