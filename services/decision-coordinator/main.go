// Command decision-coordinator runs the decision-coordinator service alone, on the same module code path as
// the all-in-one `fabric -target decision-coordinator`:
//
//	go run ./services/decision-coordinator -config services/decision-coordinator/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.Coordinator) }
