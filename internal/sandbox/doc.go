// Package sandbox is the Trestle sandbox: the whole Twilio bridge running on
// this machine for someone without a Twilio account, started by
// `go run ./cmd/trestle-sandbox`.
//
// [Start] runs Dendrite, the trestle-twilio binary and the Twilio simulator
// on loopback (see rig.StartEnv), creates a Matrix user (@me:localhost) and a
// simulated Twilio account with one number, and logs that number in to the
// bridge by talking to the bridge bot exactly as a person would (a DM with
// the bot, `login`, the Account SID, the auth token, "-" for the optional
// questions). It then serves a small web page, embedded in the binary, with
// two panes:
//
//   - the phone: act as any phone number, text the user's Twilio number
//     (SMS, or MMS with an image) through the simulator's inbound webhook,
//     and see what the bridge sends back with Twilio's delivery statuses
//     (queued, sent, delivered, undelivered, failed) as they change. A phone
//     can be made unreachable, unsubscribed (STOP) or failing, and outgoing
//     messages can be held at queued, to see failures and each status step.
//     A phone written "whatsapp:+E164" is a WhatsApp contact: it writes to
//     the WhatsApp sender of the user's number, and its chat is the
//     bridge's WhatsApp room with that number.
//   - Matrix: the user's rooms as a Matrix client in the sandbox process
//     sees them (portals, the bot's DM), with the bridge's status reports on
//     each sent message, and a box to send as the user.
//
// The page's JSON API long-polls: GET /api/phone?number=...&since=V and
// GET /api/matrix?since=V answer at once when the state's version differs
// from V, else when it changes or after 25 seconds.
//
// It is test equipment: everything listens on loopback only, and the page
// refuses cross-origin writes and non-loopback Host names, since it acts as
// the sandbox user.
package sandbox
