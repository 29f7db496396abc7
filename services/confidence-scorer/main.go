// Command confidence-scorer runs the confidence-scorer service alone, on the same module code path as
// the all-in-one `fabric -target confidence-scorer`:
//
//	go run ./services/confidence-scorer -config services/confidence-scorer/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.Scorer) }
