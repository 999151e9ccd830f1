package httpapi

import (
	"encoding/csv"
	"strings"
	"testing"
)

// FuzzCSVCell: whatever a refused request carried, its exported cell never starts with a
// character a spreadsheet treats as a formula, and reads back (minus the guard) unchanged.
func FuzzCSVCell(f *testing.F) {
	for _, s := range []string{`=HYPERLINK("http://x","y")`, "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", `a,"b"` + "\nc", "plain", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cell := csvCell(s)
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Fatalf("%q exported as %q", s, cell)
		}
		var b strings.Builder
		w := csv.NewWriter(&b)
		_ = w.Write([]string{cell, "next"})
		w.Flush()
		rec, err := csv.NewReader(strings.NewReader(b.String())).Read()
		if err != nil || len(rec) != 2 || rec[1] != "next" {
			t.Fatalf("%q does not survive CSV: %q %v", s, rec, err)
		}
		// encoding/csv reads \r\n inside a quoted field back as \n.
		if want := strings.ReplaceAll(cell, "\r\n", "\n"); rec[0] != want {
			t.Fatalf("%q read back as %q, want %q", s, rec[0], want)
		}
	})
}
