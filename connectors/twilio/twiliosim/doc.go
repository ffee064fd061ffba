// Package twiliosim is a fake of the Twilio REST API (2010-04-01) subset that
// Trestle's Twilio connector uses, plus Twilio's behaviour towards the bridge:
// signed SMS/MMS webhooks, asynchronous media fetching and status callbacks.
//
// It is TEST EQUIPMENT. It keeps everything in memory, trusts any caller that
// knows an auth token it was handed, and happily signs webhooks with those
// tokens. It must never be reachable from outside the machine it runs on:
// [Server.Start] binds loopback addresses only and refuses any other, and the
// requests the simulator itself makes (webhooks, status callbacks, media
// fetches) are only dialled to loopback addresses unless
// [Options.AllowNonLoopbackTargets] is set. Do not embed a Server in a
// production binary.
//
// Fidelity: resources, list envelopes, paging fields, form field names and
// routes follow Twilio's OpenAPI description (twilio_api_v2010.json); errors
// are Twilio's JSON error bodies ({"code", "message", "more_info", "status"})
// with the matching HTTP status, so github.com/twilio/twilio-go parses every
// answer. A conformance test checks the simulator against that file.
//
// Typical use in a test:
//
//	sim := twiliosim.New(twiliosim.Options{})
//	if err := sim.Start(); err != nil { ... }
//	defer sim.Close()
//	acct, _ := sim.AddAccount("", "")
//	acct.AddNumber("+15005550006", twiliosim.Capabilities{SMS: true, MMS: true})
//	// point twilio-go at sim.URL() instead of https://api.twilio.com
package twiliosim
