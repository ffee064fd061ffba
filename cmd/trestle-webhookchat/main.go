// Command trestle-webhookchat is the Trestle bridge between Matrix and any
// service that speaks the webhook chat protocol (see package
// connectors/webhookchat).
//
//	trestle-webhookchat -c config.yaml                 run the bridge
//	trestle-webhookchat -c config.yaml -g -r reg.yaml  generate the appservice registration
//	trestle-webhookchat --version                      print version and commit
package main

import (
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/connectors/webhookchat"
)

func main() {
	bridgemain.Main(webhookchat.New(), webhookchat.ExampleConfigFile)
}
