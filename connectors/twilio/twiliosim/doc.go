// Package twiliosim is a fake of the Twilio REST APIs that Trestle's Twilio
// connector uses, plus Twilio's behaviour towards the bridge: signed
// webhooks for SMS, MMS, WhatsApp, RCS and Conversations, asynchronous
// media fetching, status callbacks and delivery receipts.
//
// # Test equipment only
//
// It keeps everything in memory, trusts any caller that knows an auth token
// it was handed, and happily signs webhooks with those tokens. It must never
// be reachable from outside the machine it runs on: [Server.Start] binds
// loopback addresses only and refuses any other, and the requests the
// simulator itself makes (webhooks, status callbacks, media fetches) are only
// dialled to loopback addresses unless [Options.AllowNonLoopbackTargets] is
// set. It is not linked into trestle-twilio or trestle-webhookchat, and a
// test keeps it so.
//
// # Products and fidelity
//
// Twilio serves each product from its own host; the simulator serves them
// all from one address ([Server.URL]), since their paths never collide.
// [Server.Transport] sends every *.twilio.com request to it, whatever the
// host. Routes, parameter names, resources and list envelopes follow
// Twilio's OpenAPI files in shared/twilio, and the conformance tests check
// every served operation's answers against its file's schemas. Errors are
// Twilio's JSON body ({"code", "message", "more_info", "status"}) on every
// product: twilio-go parses the errors of all the products below in that
// shape (only APIs of Twilio's "v1.0 standards", such as Conversations v2,
// use another). Served:
//
//	api.twilio.com (twilio_api_v2010.json)
//	GET  /2010-04-01/Accounts/{Sid}.json
//	GET  /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json
//	GET  /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json
//	POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json
//	POST /2010-04-01/Accounts/{AccountSid}/Messages.json     (+ ContentSid, ContentVariables, FallbackFrom)
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}   (content: 307 to /cdn/{key})
//	GET  /cdn/{key}                                                            (media bytes, no auth)
//
//	conversations.twilio.com (twilio_conversations_v1.json), default service only
//	GET      /v1/Configuration
//	GET/POST /v1/Configuration/Webhooks                      (the global webhook)
//	POST/GET /v1/Conversations, GET/DELETE /v1/Conversations/{Sid}
//	POST/GET /v1/Conversations/{ConversationSid}/Participants
//	GET/DELETE /v1/Conversations/{ConversationSid}/Participants/{Sid}
//	POST/GET /v1/Conversations/{ConversationSid}/Messages
//	GET      /v1/Conversations/{ConversationSid}/Messages/{Sid}
//	GET      /v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts
//	POST/GET /v1/Conversations/{ConversationSid}/Webhooks, DELETE .../Webhooks/{Sid}
//
//	mcs.us1.twilio.com (no OpenAPI file; Twilio's Media resource documentation)
//	POST /v1/Services/{ChatServiceSid}/Media                 (raw body or multipart upload)
//	GET  /v1/Services/{ChatServiceSid}/Media/{Sid}           (links.content_direct_temporary: the CDN)
//	GET  /v1/Services/{ChatServiceSid}/Media/{Sid}/Content
//
//	messaging.twilio.com (twilio_messaging_v1.json)
//	GET /v1/Services, GET/POST /v1/Services/{Sid}
//	GET /v1/Services/{ServiceSid}/PhoneNumbers
//	GET /v1/Services/{MessagingServiceSid}/ChannelSenders, GET .../ChannelSenders/{Sid}
//
//	messaging.twilio.com/v2 (no OpenAPI file; checked against twilio-go's messaging/v2 models)
//	GET /v2/Channels/Senders?Channel=whatsapp|rcs, GET/POST /v2/Channels/Senders/{Sid}
//
//	content.twilio.com (twilio_content_v1.json)
//	GET /v1/Content, GET /v1/Content/{Sid}, GET /v1/ContentAndApprovals,
//	GET /v1/Content/{Sid}/ApprovalRequests
//
//	lookups.twilio.com (twilio_lookups_v2.json)
//	GET /v2/PhoneNumbers/{PhoneNumber}?Fields=caller_name,line_type_intelligence
//
// # Typical use
//
//	sim, acct := twiliosim.StartForTest(t, "+15005550006")
//	acct.SetSMSURL("+15005550006", bridgeWebhookURL)
//	// point the bridge at sim.URL() (network.api_url), or give twilio-go an
//	// http.Client whose Transport is sim.Transport(nil), then:
//	res, err := sim.SendInbound(ctx, twiliosim.InboundMessage{From: "+15551230001", To: "+15005550006", Body: "hi"})
//	msgs, err := sim.WaitOutbound(ctx, func(m []twiliosim.OutboundMessage) bool { return len(m) == 1 && m[0].Done })
//
// # Senders that are not phone numbers, and opt-outs
//
// Inbound From may be a short code ("12345"), an alphanumeric sender ID
// ("GOOGLE") or a toll-free number. Replies fail as Twilio documents it:
// to a short code with 21265 ("Twilio numbers cannot send messages to short
// codes", twilio.com/docs/api/errors/21265), to an alphanumeric sender ID
// with 21211 (its documented causes include sending to one); toll-free
// numbers are ordinary numbers. An inbound SMS whose whole body is one of
// Twilio's default keywords (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
// REVOKE, OPTOUT; START, YES, UNSTOP; HELP, INFO) carries OptOutType (STOP,
// START, HELP) and, for STOP, blocks messages from the number (its whole
// Messaging Service when it belongs to one) to that contact with 21610
// until START:
//
//	sim.SendInbound(ctx, twiliosim.InboundMessage{From: contact, To: ours, Body: "STOP"})
//	acct.OptedOut(ours, contact) // true; creating a message now fails with 21610
//
// # Messaging Services, WhatsApp and RCS
//
//	svc, _ := acct.AddMessagingService("", "+15005550006", "+15005550007") // sticky sender on
//	acct.ConfigureService(svc, twiliosim.ServiceConfig{InboundURL: url, StatusCallback: url})
//	acct.AddWhatsAppSender("+15005550006", "Our Business")    // "whatsapp:+15005550006"
//	acct.SetSenderWebhook("whatsapp:+15005550006", url)       // else service URL, else the number's sms_url
//	acct.AddRCSSender("our_agent", "Our Business")            // "rcs:our_agent"
//	acct.AddServiceSender(svc, "rcs:our_agent")
//	sim.SetRecipient(contact, twiliosim.RecipientConfig{RCSCapable: true})
//
// A message through a service goes out from the pool number the contact
// last texted or was texted from (else the first), and inbound texts to
// any pool number reach the service's inbound URL. With an RCS sender in
// the service, a message to an RCS-capable recipient goes over RCS: its
// From becomes "rcs:<agent>", its To "rcs:+E164", and status callbacks
// carry ChannelPrefix=rcs; otherwise it falls back to SMS from a pool
// number (FallbackFrom when given) without channel fields. Status callbacks
// of WhatsApp and RCS messages carry the fields Twilio documents for "other
// messaging channels": ChannelPrefix, ChannelInstallSid (the sender's XE
// SID), ChannelToAddress, EventType (DELIVERED, READ) and, on failure,
// ChannelStatusMessage. [Server.MarkRead] makes the contact read a
// delivered WhatsApp or RCS message (status read, a read callback).
//
// Inbound WhatsApp webhooks carry ProfileName, WaId, MessageType,
// ReferralNumMedia and ChannelMetadata, plus, when set in
// [WhatsAppDetails], OriginalRepliedMessageSid and
// OriginalRepliedMessageSender, Latitude/Longitude/Address/Label,
// ButtonText/ButtonPayload, Referral* and Forwarded/FrequentlyForwarded,
// as in captured Twilio requests; they carry no SMS geography or
// OptOutType. Twilio's documentation lists no parameters for inbound
// WhatsApp reactions, so the simulator invents none; InboundMessage.Extra
// adds any parameter a test needs as is.
//
// WhatsApp's 24-hour window: a free-form message (no ContentSid, or a
// template not approved for WhatsApp) to a contact who has not written to
// that sender within 24 hours of the simulator's clock is accepted (201)
// and then fails with 63016, as on Twilio. Approved templates go through:
//
//	clock := twiliosim.NewManualClock(start)
//	sim, acct := twiliosim.StartForTestWith(t, twiliosim.Options{Now: clock.Now}, "+15005550006")
//	hx, _ := acct.AddContent(twiliosim.ContentTemplate{FriendlyName: "Reminder",
//		Body: "Hi {{1}}", Approval: twiliosim.ApprovalApproved})
//	clock.Advance(25 * time.Hour) // now only hx can reach the contact
//
// # Group MMS (Conversations)
//
// A bridge builds a group as Twilio documents: phones with
// MessagingBinding.Address, itself as an Identity with
// MessagingBinding.ProjectedAddress. Twilio's rules and codes apply:
// 50407 (invalid address), 50408 (projected address not the account's),
// 50416 (address already in), 50434 (an identity without projected address
// in a group), 50435 (a non-US/Canada phone, or a second projected
// address), 50436 (more than 10 participants), 50513 (author not in the
// group). Titles come from twilio.com/docs/api/errors/<code>. A bridge's
// message goes to every phone from the projected number, with a delivery
// receipt per phone (recipient configuration applies) and
// onDeliveryUpdated. A phone texting the group, or starting one:
//
//	res, err := sim.SendGroupText(ctx, twiliosim.GroupText{From: alice, To: "+15005550006",
//		Others: []string{bob, carol}, Body: "hi all"}) // creates the group if needed
//	group, _ := acct.FindGroup("+15005550006", alice, bob, carol)
//	convs, _ := acct.WaitConversations(ctx, func(c []twiliosim.Conversation) bool { ... })
//	acct.AddParticipant(ctx, group.SID, dave) // as another party: onParticipantAdded
//
// Webhooks go to the global webhook and the conversation-scoped ones whose
// filters name the event (onConversationAdded, onConversationRemoved,
// onMessageAdded, onParticipantAdded, onParticipantRemoved,
// onDeliveryUpdated), form-encoded and signed like messaging webhooks. As
// on Twilio, REST actions fire them only with X-Twilio-Webhook-Enabled:
// true. [Account.ConversationEvents] records every one sent.
//
// # Lookup, API call counts and faults
//
//	sim.SetLookup(contact, twiliosim.LookupInfo{CallerName: "Ada", LineType: twiliosim.LineTypeLandline})
//	sim.LookupCount(contact)    // lookups made for the number
//	acct.APICalls()             // calls by endpoint, e.g. "GET lookups.twilio.com/v2/PhoneNumbers/{PhoneNumber}"
//	sim.ResetAPICalls()
//
// REST faults ([Server.InjectFault]) match any product's paths
// ("/v1/Conversations/*/Messages") and the account the credentials name.
// Webhook faults act on the requests the simulator sends (incoming
// webhooks, status callbacks, Conversations events):
//
//	hole := sim.BlackHoleWebhooks() // the bridge hears nothing; texts stay in the log
//	defer hole.Remove()
//	sim.InjectWebhookFault(twiliosim.WebhookFault{Kind: twiliosim.WebhookProxyError, Times: 1})
//
// # Known differences from Twilio, kept on purpose
//
//   - Credentials valid for another account get 401/20003 (what Twilio
//     answers), not a 403.
//   - Malformed query or form values get 400 with code 20001 (60200 on
//     Lookup); Twilio's specific codes for these are not modelled.
//   - Body length (1600 at most) is counted in Unicode code points.
//   - Lists of the 2010-04-01 API are newest first, the others oldest
//     first; PageSize above 1000 is clamped to 1000. DateSent filters work
//     by UTC day (on or after, on or before), as Twilio documents them.
//   - Page and resource URLs of the newer APIs are absolute URLs on the
//     simulator's address, not Twilio's hosts, so that a client following
//     them cannot reach the real Twilio.
//   - Messages go through their statuses as fast as the bridge answers: no
//     one-segment-per-second sending rate, no price, no "sending" status.
//   - Media is always fetched once per URL, without caching, and any 2xx
//     answer with a Content-Type is accepted (no size or type limits).
//   - The SMS webhook's geographic fields are empty except ToCountry and
//     FromCountry, guessed from the calling code.
//   - SmsFallbackUrl is stored but never called; webhooks are not retried
//     (Twilio does not retry by default either).
//   - OptOutType is sent as with Advanced Opt-Out on every number; the
//     confirmation texts Twilio answers keywords with are not sent.
//   - Lookup calls every possible number valid (the tests' 555 numbers
//     are fictional) unless LookupInfo.Invalid says otherwise.
//   - Conversations: only the default Conversation Service, SMS
//     participants, and webhook targets (no Studio, no pre-event webhooks,
//     no service-level webhooks); a group a phone starts is created as with
//     address autocreation on. Conversation traffic does not appear in the
//     2010-04-01 message log (Twilio's documentation does not say whether
//     it does), and a receipt's channel_message_sid is not fetchable there.
//   - RCS only through a Messaging Service; To "rcs:+E164" (forcing RCS
//     without fallback) is refused with 21211. Inbound RCS webhooks carry
//     the basic message fields only.
//   - WhatsApp senders are always ONLINE; the Senders API serves list,
//     fetch and webhook updates only.
package twiliosim
