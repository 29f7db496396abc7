// Command fabric runs the Decision Fabric: all seven services in one process by default
// (`fabric`), one of them (`fabric -target decision-coordinator`), the compliance
// precheck (`fabric precheck`) or mints a development token (`fabric token`). The
// command line is internal/cli; what it serves is internal/app's module graph.
package main

import (
	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/cli"
)

func main() { cli.Run(app.All) }
