// Package fabric names the seven Decision Fabric services and their default ports, in one
// place, so configuration, the module graph, docs and tests agree.
package fabric

// Service names, as used in configuration, logs, metrics and the module graph.
const (
	Coordinator = "decision-coordinator"
	Composer    = "proposal-composer"
	Negotiator  = "federated-negotiator"
	Scorer      = "confidence-scorer"
	HIL         = "hil-gateway"
	Auditor     = "decision-auditor"
	Canary      = "sim-canary"
)

// Version is the fabric's release; overridden at link time with
// -ldflags "-X github.com/decision-fabric/fabric/internal/fabric.Version=...".
var Version = "v9.3.0-phaseI.4-dev"

// Ports is one service's default REST and gRPC ports.
type Ports struct {
	HTTP int // the spec's REST port (9201-9207)
	GRPC int // the service's gRPC port (HTTP+100)
}

// Services lists every service in start order with its default ports. The REST ports are
// fixed by the spec; each gRPC port is the REST port plus 100.
var Services = []struct {
	Name  string
	Ports Ports
}{
	{Coordinator, Ports{9201, 9301}},
	{Composer, Ports{9202, 9302}},
	{Negotiator, Ports{9203, 9303}},
	{Scorer, Ports{9204, 9304}},
	{HIL, Ports{9205, 9305}},
	{Auditor, Ports{9206, 9306}},
	{Canary, Ports{9207, 9307}},
}

// Names returns the service names in start order.
func Names() []string {
	out := make([]string, len(Services))
	for i, s := range Services {
		out[i] = s.Name
	}
	return out
}

// IsService reports whether name is one of the seven services.
func IsService(name string) bool {
	for _, s := range Services {
		if s.Name == name {
			return true
		}
	}
	return false
}
