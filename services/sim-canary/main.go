// Command sim-canary runs the sim-canary service alone, on the same module code path as
// the all-in-one `fabric -target sim-canary`:
//
//	go run ./services/sim-canary -config services/sim-canary/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.Canary) }
