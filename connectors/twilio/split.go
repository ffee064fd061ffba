package twilio

import (
	"strings"
	"unicode"
	"unicode/utf16"
)

// maxBodyUnits is Twilio's body limit. Twilio documents it as 1600
// characters; the connector counts UTF-16 code units, which is never fewer
// than the characters Twilio counts, so a body within it is always
// accepted (an emoji outside the BMP counts as two).
const maxBodyUnits = 1600

// bodyUnits is the length of s as Twilio's limit counts it here.
func bodyUnits(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// runeUnits is the UTF-16 length of one rune (invalid runes count as one,
// as their replacement character does).
func runeUnits(r rune) int {
	if n := utf16.RuneLen(r); n > 0 {
		return n
	}
	return 1
}

// splitText cuts text (none for an empty text) into chunks of at most limit UTF-16 units whose
// concatenation is exactly text. A cut falls next to whitespace, preferably
// after a line break in the second half of the chunk; only a single word
// longer than limit is cut inside, and then not between a character and a
// combining mark, variation selector or zero-width joiner that belongs to it.
func splitText(text string, limit int) []string {
	if limit < 2 {
		limit = 2
	}
	if text == "" {
		return nil
	}
	if bodyUnits(text) <= limit {
		return []string{text}
	}
	runes := []rune(text)
	var chunks []string
	start := 0
	for start < len(runes) {
		end, units := start, 0
		for end < len(runes) && units+runeUnits(runes[end]) <= limit {
			units += runeUnits(runes[end])
			end++
		}
		if end == len(runes) {
			chunks = append(chunks, string(runes[start:]))
			break
		}
		cut := chooseCut(runes, start, end)
		chunks = append(chunks, string(runes[start:cut]))
		start = cut
	}
	return chunks
}

// chooseCut picks where the chunk runes[start:end] (which is full) ends.
func chooseCut(runes []rune, start, end int) int {
	half := start + (end-start)/2
	// A line break in the second half makes the most readable cut.
	for p := end; p > half; p-- {
		if runes[p-1] == '\n' {
			return p
		}
	}
	// Otherwise the last boundary between a word and whitespace.
	for p := end; p > start; p-- {
		if unicode.IsSpace(runes[p-1]) != unicode.IsSpace(runes[p]) {
			return p
		}
	}
	// One word fills the chunk: cut inside it, but not inside a cluster.
	for p := end; p > start+1; p-- {
		if !joinsPrevious(runes[p]) && runes[p-1] != '\u200d' {
			return p
		}
	}
	return end
}

// joinsPrevious reports whether r belongs to the character before it.
func joinsPrevious(r rune) bool {
	return unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || unicode.Is(unicode.Mc, r) ||
		r == '\u200d' || (r >= '\ufe00' && r <= '\ufe0f') || (r >= 0x1f3fb && r <= 0x1f3ff) ||
		(r >= 0xe0020 && r <= 0xe007f)
}

// smsBodies turns a text into the bodies to send: the chunks of splitText
// with their edge whitespace trimmed (Twilio would show it as is), empty
// chunks dropped.
func smsBodies(text string) []string {
	var out []string
	for _, chunk := range splitText(text, maxBodyUnits) {
		if t := strings.TrimSpace(chunk); t != "" {
			out = append(out, t)
		}
	}
	return out
}
