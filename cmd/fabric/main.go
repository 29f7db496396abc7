// Command fabric runs the Decision Fabric: all seven services in one process by default
// (`fabric`), one of them (`fabric -target decision-coordinator`), the compliance
// precheck (`fabric precheck`) or mints a development token (`fabric token`).
package main

import "github.com/decision-fabric/fabric/internal/app"

func main() { app.Run(app.All) }
