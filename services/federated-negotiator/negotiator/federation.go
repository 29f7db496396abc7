package negotiator

import (
	"errors"
	"fmt"

	"google.golang.org/grpc"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"

	"github.com/decision-fabric/fabric/internal/federation"
)

// Federation makes the negotiator coordinate regions that run as their own processes
// (Deps.Federation): each region of the registry is a RemoteAgent reached over gRPC at
// its registry endpoint, and the registry's keys are the only keys its votes verify
// with. The regions_file is not used then: every region of the registry votes with its
// registry weight, under the majority rule unless a request names another, for at most
// defaultMaxRounds rounds.
type Federation struct {
	// Registry lists the regions (internal/federation). Required.
	Registry *federation.Registry
	// DialOptions reach the regions: the federation token and, when configured, mutual
	// TLS (federation.TLSFiles.DialOptions). Required.
	DialOptions []grpc.DialOption
}

// federatedRegions is the region set of a registry.
func federatedRegions(reg *federation.Registry) *RegionsConfig {
	c := &RegionsConfig{QuorumRule: negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY, MaxRounds: defaultMaxRounds, Tenants: map[string]TenantPolicy{}}
	for _, r := range reg.Regions {
		c.Regions = append(c.Regions, RegionConfig{Name: r.Name, Weight: r.Weight, ErrorBudget: 1})
	}
	return c
}

// federate sets deps up for f: the registry's regions, a RemoteAgent per region and
// the registry's keys. It returns the connections to close with the service.
func federate(deps *Deps, m *metrics) ([]*grpc.ClientConn, error) {
	f := deps.Federation
	if f.Registry == nil || len(f.DialOptions) == 0 {
		return nil, errors.New("negotiator: Deps.Federation: Registry and DialOptions are required")
	}
	if len(deps.Agents) > 0 {
		return nil, errors.New("negotiator: Deps.Federation and Deps.Agents are exclusive")
	}
	keys, err := f.Registry.Keys()
	if err != nil {
		return nil, fmt.Errorf("negotiator: federation registry: %w", err)
	}
	deps.Regions = federatedRegions(f.Registry)
	deps.RegionKeys = keys
	deps.Agents = map[string]Agent{}
	var conns []*grpc.ClientConn
	for _, r := range f.Registry.Regions {
		conn, err := grpc.NewClient(r.Endpoint, f.DialOptions...)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("negotiator: region %s at %s: %w", r.Name, r.Endpoint, err)
		}
		conns = append(conns, conn)
		deps.Agents[r.Name] = NewRemoteAgent(r, conn, deps.Now, func(reason string) { m.refused.WithLabelValues(reason).Inc() })
	}
	return conns, nil
}
