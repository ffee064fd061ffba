// Command trestle-twilio is the Trestle bridge between Matrix and Twilio
// Programmable Messaging (SMS and MMS).
//
//	trestle-twilio -c config.yaml                 run the bridge
//	trestle-twilio -c config.yaml -g -r reg.yaml  generate the appservice registration
//	trestle-twilio --version                      print version and commit
package main

import (
	trestle "github.com/trestle-bridge/trestle"
	"github.com/trestle-bridge/trestle/bridgev2/bridgemain"
	"github.com/trestle-bridge/trestle/connectors/twilio"
)

func main() {
	bridgemain.Main(twilio.New(), trestle.ExampleConfig)
}
