package twiliosim

import (
	"strings"
	"testing"
)

func TestSegmentCount(t *testing.T) {
	r := strings.Repeat
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{"empty (MMS)", "", 1},
		{"160 GSM-7", r("a", 160), 1},
		{"161 GSM-7", r("a", 161), 2},
		{"306 GSM-7", r("a", 306), 2},
		{"307 GSM-7", r("a", 307), 3},
		{"GSM-7 accents stay GSM-7", r("éàüÑ", 40), 1},
		{"80 euro signs are 160 septets", r("€", 80), 1},
		{"81 euro signs are 162 septets", r("€", 81), 2},
		{"escape pair is not split across segments", r("a", 152) + "€" + r("a", 152), 3},
		{"70 UCS-2", r("ж", 70), 1},
		{"71 UCS-2", r("ж", 71), 2},
		{"134 UCS-2", r("ж", 134), 2},
		{"135 UCS-2", r("ж", 135), 3},
		{"one non-GSM character makes it UCS-2", r("a", 70) + "ж", 2},
		{"35 emoji are 70 UTF-16 units", r("😀", 35), 1},
		{"36 emoji are 72 units", r("😀", 36), 2},
		{"surrogate pair is not split", r("a", 66) + "😀" + r("a", 66), 3},
	} {
		if got := SegmentCount(tc.body); got != tc.want {
			t.Errorf("%s: SegmentCount = %d, want %d", tc.name, got, tc.want)
		}
	}
}
