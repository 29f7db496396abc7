// Command decision-auditor runs the decision-auditor service alone, on the same module code path as
// the all-in-one `fabric -target decision-auditor`:
//
//	go run ./services/decision-auditor -config services/decision-auditor/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.Auditor) }
