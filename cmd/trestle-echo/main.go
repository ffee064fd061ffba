// Command trestle-echo is a Trestle bridge to the echo network, whose
// made-up contacts answer everything with an echo: for demos and for
// trying a homeserver set-up without any remote account (see package
// connectors/echo).
//
//	trestle-echo -c config.yaml                 run the bridge
//	trestle-echo -c config.yaml -g -r reg.yaml  generate the appservice registration
//	trestle-echo --version                      print version and commit
package main

import (
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/connectors/echo"
)

func main() {
	bridgemain.Main(echo.New(), echo.ExampleConfigFile)
}
