// Command hil-gateway runs the hil-gateway service alone, on the same module code path as
// the all-in-one `fabric -target hil-gateway`:
//
//	go run ./services/hil-gateway -config services/hil-gateway/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.HIL) }
