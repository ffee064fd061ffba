package twiliosim

import (
	"strings"
	"unicode/utf16"
)

// SMS segment arithmetic, as carriers and Twilio do it. A body that fits the
// GSM-7 alphabet is counted in septets (extension characters take two); any
// other body is sent as UCS-2 and counted in UTF-16 code units. One segment
// holds 160 septets or 70 units; once a body needs several, each carries a
// concatenation header and holds 153 septets or 67 units. A segment boundary
// never splits an escape pair or a surrogate pair.

// gsm7Basic is the GSM 03.38 default alphabet (without ESC).
const gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsm7Extension characters are sent as ESC + one septet.
const gsm7Extension = "^{}\\[~]|€\f"

// SegmentCount returns how many SMS segments Twilio bills body as. An empty
// body (an MMS without text) counts as one.
func SegmentCount(body string) int {
	if units, ok := gsm7Units(body); ok {
		return pack(units, 160, 153)
	}
	var units []int
	for _, r := range body {
		units = append(units, utf16.RuneLen(r))
	}
	return pack(units, 70, 67)
}

// gsm7Units returns the septet width of each character of body, or false
// when body needs UCS-2.
func gsm7Units(body string) ([]int, bool) {
	units := make([]int, 0, len(body))
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			units = append(units, 1)
		case strings.ContainsRune(gsm7Extension, r):
			units = append(units, 2)
		default:
			return nil, false
		}
	}
	return units, true
}

// pack counts segments for characters of the given widths: one segment when
// they fit single, else greedy filling of concatenated segments.
func pack(units []int, single, concatenated int) int {
	total := 0
	for _, u := range units {
		total += u
	}
	if total <= single {
		return 1
	}
	segments, used := 1, 0
	for _, u := range units {
		if used+u > concatenated {
			segments++
			used = 0
		}
		used += u
	}
	return segments
}
