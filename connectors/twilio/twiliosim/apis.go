package twiliosim

// api is one of the Twilio REST products the simulator serves. Twilio
// serves each from a host of its own; the simulator serves them all from one
// address, which works because their paths never collide (the v1 APIs that
// share /v1/Services tell their resources apart by path shape).
type api int

const (
	apiV2010         api = iota // api.twilio.com/2010-04-01
	apiConversations            // conversations.twilio.com/v1
	apiMessaging                // messaging.twilio.com/v1 (Messaging Services)
	apiSenders                  // messaging.twilio.com/v2 (Channels Senders)
	apiContent                  // content.twilio.com/v1
	apiLookups                  // lookups.twilio.com/v2
	apiMediaContent             // mcs.us1.twilio.com/v1 (Conversations media)
)

// apiInfo is what the simulator knows about a product: the host Twilio
// serves it from (used to name endpoints in call counts) and the OpenAPI
// file in /work/shared/twilio its routes are checked against ("" when
// Twilio publishes none there).
type apiInfo struct {
	host string
	spec string
}

var apis = map[api]apiInfo{
	apiV2010:         {"api.twilio.com", "twilio_api_v2010.json"},
	apiConversations: {"conversations.twilio.com", "twilio_conversations_v1.json"},
	apiMessaging:     {"messaging.twilio.com", "twilio_messaging_v1.json"},
	apiSenders:       {"messaging.twilio.com", ""},
	apiContent:       {"content.twilio.com", "twilio_content_v1.json"},
	apiLookups:       {"lookups.twilio.com", "twilio_lookups_v2.json"},
	apiMediaContent:  {"mcs.us1.twilio.com", ""},
}
