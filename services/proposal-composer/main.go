// Command proposal-composer runs the proposal-composer service alone, on the same module code path as
// the all-in-one `fabric -target proposal-composer`:
//
//	go run ./services/proposal-composer -config services/proposal-composer/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.Composer) }
