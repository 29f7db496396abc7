package crash

import (
	"fmt"
	"testing"

	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// crashRegions: tenant t1 negotiates with three regions that answer at once (its
// negotiations end in milliseconds, under the default 30 s deadline); tenant t2 with
// three regions that take crashSlowLatency to answer, under crashShortDeadline, so
// that at any moment some of t2's negotiations are running and a kill leaves them
// to pass their deadline while the fabric is dead.
const crashRegions = `
quorum_rule: majority
regions:
  - {name: eu-west, capacity: 1000}
  - {name: eu-central, capacity: 1000}
  - {name: us-east, capacity: 1000}
  - {name: slow-a, capacity: 1000, latency: 400ms}
  - {name: slow-b, capacity: 1000, latency: 400ms}
  - {name: slow-c, capacity: 1000, latency: 400ms}
tenants:
  t1:
    regions: [eu-west, eu-central, us-east]
  t2:
    regions: [slow-a, slow-b, slow-c]
`

// crashPolicy classifies every change as low impact (no human approval step), and
// gives tenant t2 a short negotiation deadline.
var crashPolicy = fmt.Sprintf(`
version: 1
defaults:
  quorum: majority
  max_monthly_cost_delta: 0
  impact_rules: []
tenants:
  t2:
    decision_timeout_ms: %d
`, crashShortDeadline.Milliseconds())

// crashRegionsOf are the regions each tenant's proposals name.
var crashRegionsOf = map[string][]string{
	"t1": {"eu-west", "eu-central", "us-east"},
	"t2": {"slow-a", "slow-b", "slow-c"},
}

// crashFabric is the all-in-one fabric as a child process (cmd/fabric), started,
// SIGKILLed and restarted on one store.
type crashFabric = fabrictest.Process

// crashNewFabric writes the configuration (free loopback ports, the store, the
// regions and policy above) without starting anything.
func crashNewFabric(t *testing.T, bin, dsn string) *crashFabric {
	t.Helper()
	return fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{DSN: dsn, Regions: crashRegions, Policy: crashPolicy})
}
