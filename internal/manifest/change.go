// What a manifest asks the world for: the input of impact classification (planned
// against the pre-state) and of enactment.

package manifest

import (
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/world"
)

// Change is the executor's view of m for tenant: action, target, regions and
// parameters (as JSON-like data). The coordinator plans it to classify the impact and
// applies it to enact.
func Change(tenant string, m *typesv1.Manifest) world.Change {
	return world.Change{
		TenantID: tenant, Action: m.GetAction(), Target: m.GetTarget(),
		Regions: m.GetRegions(), Parameters: m.GetParameters().AsMap(),
	}
}
