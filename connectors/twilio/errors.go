package twilio

import (
	"fmt"
	"strconv"
)

// Twilio error codes the connector treats specially.
const (
	codeAuthenticate       = 20003
	codeTooManyRequests    = 20429
	codeServiceUnavailable = 20503
	codeBindingExists      = 50416
)

// errorSentences are Matrix-user sentences for Twilio's error codes, both
// REST errors (2xxxx) and delivery errors in status callbacks (3xxxx,
// 1xxxx). They say what happened and, where the user can act, what to do.
var errorSentences = map[int]string{
	11200: "Twilio could not download the attachment from the bridge (HTTP retrieval failure); check that appservice.public_address is reachable from the internet.",
	12300: "Twilio rejected the attachment because of its content type.",
	20003: "Twilio rejected the account's credentials.",
	20404: "Twilio does not know the requested resource.",
	20429: "Twilio is rate-limiting requests.",
	21211: "The recipient's number is not a valid phone number.",
	21212: "The sending number is not a valid phone number, short code or sender ID.",
	21214: "The recipient's number cannot be reached.",
	21266: "A number cannot text itself.",
	21408: "Sending to this country is not enabled for the Twilio account (see Messaging Geographic Permissions in the Twilio console).",
	21602: "The message has no text and no attachment.",
	21603: "The message has no sender.",
	21604: "The message has no recipient.",
	21606: "The sending number cannot send this message: it is not a message-capable Twilio number of this account for this destination.",
	21608: "A Twilio trial account can only text verified numbers.",
	21609: "Twilio rejected the bridge's status callback URL; check appservice.public_address.",
	21610: "The recipient has unsubscribed (replied STOP); they must reply START before they can be texted again.",
	21611: "The sending number has too many messages queued; try again later.",
	21612: "Twilio cannot route texts from this number to the recipient.",
	21614: "The recipient's number is not a mobile number and cannot receive texts.",
	21617: "The message is longer than Twilio's 1600-character limit.",
	21619: "The message has no text and no attachment.",
	21620: "Twilio rejected an attachment URL.",
	21623: "The message has too many attachments (at most 10).",
	21701: "The Messaging Service of this login does not exist.",
	21704: "The Messaging Service of this login has no phone numbers.",
	50407: "Twilio refused a group member's number as invalid; group texts take US and Canadian mobile numbers in full international form.",
	50408: "Twilio refused this login's number as the group's sending number; it must be an SMS-capable number of the Twilio account.",
	50416: "That number is already in the group.",
	50434: "Twilio refused the group: every member of a group text must be a phone, and the bridge must text as this login's number.",
	50435: "Group texts work only between US and Canadian numbers, with one sending number; Twilio refused this group (error 50435).",
	50436: "A group text can have at most 10 people, this login's number included.",
	50513: "Twilio refused the message: this login's number is no longer a member of the group.",
	30001: "Twilio's sending queue overflowed; try again later.",
	30002: "The Twilio account is suspended.",
	30003: "The recipient's phone is unreachable (switched off or out of coverage).",
	30004: "The message was blocked (by the recipient or their carrier).",
	30005: "The recipient's number is unknown or no longer in service.",
	30006: "The recipient's number is a landline or their carrier cannot receive texts.",
	30007: "The carrier filtered the message as spam.",
	30008: "The message could not be delivered (unknown carrier error).",
	30009: "Part of the multi-part message was lost on the way.",
	30010: "The message's price exceeded the maximum price.",
	30019: "The attachment is larger than the recipient's carrier accepts.",
	30032: "The toll-free sending number is not verified, so carriers block its texts.",
	30034: "The sending number is not registered for US A2P 10DLC, so US carriers block its texts.",
}

// errorSentence returns the sentence for a Twilio error code, or one built
// from Twilio's own message when the code is not in the table.
func errorSentence(code int, twilioMessage string) string {
	if s, ok := errorSentences[code]; ok {
		return s
	}
	switch {
	case code == 0 && twilioMessage == "":
		return "Twilio refused the request."
	case code == 0:
		return fmt.Sprintf("Twilio refused the request: %s", twilioMessage)
	case twilioMessage == "":
		return fmt.Sprintf("Twilio refused the request (error %d).", code)
	default:
		return fmt.Sprintf("Twilio refused the request (error %d: %s).", code, twilioMessage)
	}
}

// deliveryFailureSentence is the sentence for a failed or undelivered
// status callback.
func deliveryFailureSentence(codeStr, twilioMessage string) string {
	code, err := strconv.Atoi(codeStr)
	if err != nil || code == 0 {
		if twilioMessage != "" {
			return "The message could not be delivered: " + twilioMessage
		}
		return "The message could not be delivered."
	}
	if s, ok := errorSentences[code]; ok {
		return s
	}
	if twilioMessage != "" {
		return fmt.Sprintf("The message could not be delivered (error %d: %s).", code, twilioMessage)
	}
	return fmt.Sprintf("The message could not be delivered (error %d).", code)
}
