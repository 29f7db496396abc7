// Command federated-negotiator runs the federated-negotiator service alone, on the same module code path as
// the all-in-one `fabric -target federated-negotiator`:
//
//	go run ./services/federated-negotiator -config services/federated-negotiator/config.example.yaml
package main

import (
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func main() { cli.Run(fabric.Negotiator) }
