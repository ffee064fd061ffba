// Package twiliosim is a fake of the Twilio REST API (2010-04-01) subset that
// Trestle's Twilio connector uses, plus Twilio's behaviour towards the bridge:
// signed SMS/MMS webhooks, asynchronous media fetching and status callbacks.
//
// # Test equipment only
//
// It keeps everything in memory, trusts any caller that knows an auth token
// it was handed, and happily signs webhooks with those tokens. It must never
// be reachable from outside the machine it runs on: [Server.Start] binds
// loopback addresses only and refuses any other, and the requests the
// simulator itself makes (webhooks, status callbacks, media fetches) are only
// dialled to loopback addresses unless [Options.AllowNonLoopbackTargets] is
// set. Do not link it into a production binary.
//
// # Fidelity
//
// Routes, form field and query parameter names, resources and list envelopes
// (first_page_uri, end, previous_page_uri, uri, page_size, start,
// next_page_uri, page) follow Twilio's OpenAPI description
// (twilio_api_v2010.json); conformance_test.go checks them against that file.
// Errors are Twilio's JSON bodies ({"code", "message", "more_info",
// "status"}) with the matching HTTP status, so github.com/twilio/twilio-go
// parses every answer. Served:
//
//	GET  /2010-04-01/Accounts/{Sid}.json
//	GET  /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json
//	GET  /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json
//	POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json
//	POST /2010-04-01/Accounts/{AccountSid}/Messages.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}   (content: 307 to /cdn/{key})
//	GET  /cdn/{key}                                                            (media bytes, no auth)
//
// Known differences from Twilio, kept on purpose:
//   - Credentials valid for another account get 401/20003 (what Twilio
//     answers), not a 403.
//   - Malformed query or form values (PageSize, Page, PageToken, dates,
//     SmsMethod, URLs on a number) get 400 with code 20001; Twilio's
//     specific codes for these are not modelled.
//   - Body length (1600 at most) is counted in Unicode code points.
//   - Lists are ordered by date_created, newest first; PageSize above 1000
//     is clamped to 1000.
//   - Messages go through their statuses as fast as the bridge answers: no
//     one-segment-per-second sending rate, no price, no "sending" status.
//   - Media is always fetched once per URL, without caching, and any 2xx
//     answer with a Content-Type is accepted (no size or type limits).
//   - The webhook's geographic fields are empty except ToCountry and
//     FromCountry, guessed from the calling code.
//   - SmsFallbackUrl is stored but never called; webhooks are not retried
//     (Twilio does not retry by default either).
//
// # Typical use
//
//	sim := twiliosim.New(twiliosim.Options{})
//	if err := sim.Start(); err != nil { ... }
//	defer sim.Close()
//	acct, _ := sim.AddAccount("", "")
//	acct.AddNumber("+15005550006", twiliosim.Capabilities{SMS: true, MMS: true})
//	acct.SetSMSURL("+15005550006", bridgeWebhookURL)
//	// point twilio-go at the simulator, e.g. with an http.Client whose
//	// Transport is sim.Transport(nil), then:
//	res, err := sim.SendInbound(ctx, twiliosim.InboundMessage{From: "+15551230001", To: "+15005550006", Body: "hi"})
//	msgs, err := sim.WaitOutbound(ctx, func(m []twiliosim.OutboundMessage) bool { return len(m) == 1 && m[0].Done })
package twiliosim
