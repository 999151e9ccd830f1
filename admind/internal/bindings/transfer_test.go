package bindings

import (
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

const (
	hashA = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	hashB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
)

// An export's rows import back as the same bindings, in CSV and in JSON, notes that look like
// formulas included.
func TestTransferRoundTrip(t *testing.T) {
	used := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	list := []Binding{
		{KeyHash: hashA, KeyHint: "sk-abcd…wxyz", Mode: ModeMultiple, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/64")},
			Status: StatusBanned, Origin: OriginFirstUse, FirstIP: netip.MustParseAddr("10.1.2.3"), CreatedAt: used, LastUsedAt: used, Note: "=cmd|' /C calc'!A0"},
		{KeyHash: hashB, Mode: ModeAll, CIDRs: []netip.Prefix{}, Status: StatusActive, Origin: OriginAdmin, CreatedAt: used, Note: "a, \"quoted\"\nnote"},
		{KeyHash: strings.Repeat("c", 64), Mode: ModeLearning, CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Status: StatusActive,
			Origin: OriginFirstUse, CreatedAt: used, LearnSlots: 3, LearnUntil: used.Add(time.Hour)},
	}
	var csvText strings.Builder
	csvText.WriteString(strings.Join(TransferColumns, ",") + "\n")
	jsonText := "["
	for i, b := range list {
		rec := b.TransferRecord()
		row := rec.CSVRow()
		for j, c := range row {
			if j > 0 {
				csvText.WriteString(",")
			}
			csvText.WriteString(`"` + strings.ReplaceAll(c, `"`, `""`) + `"`)
		}
		csvText.WriteString("\n")
		if i > 0 {
			jsonText += ","
		}
		jsonText += mustJSON(t, rec)
	}
	jsonText += "]"
	if strings.Contains(csvText.String(), `"=cmd`) {
		t.Errorf("a formula reached the CSV unguarded:\n%s", csvText.String())
	}
	for format, text := range map[string]string{"csv": csvText.String(), "json": jsonText} {
		rows, bad := ParseImport(format, strings.NewReader(text))
		if len(bad) > 0 {
			t.Fatalf("%s: %+v", format, bad)
		}
		got, _, bad := validateImport(rows)
		if len(bad) > 0 || len(got) != len(list) {
			t.Fatalf("%s: %+v %+v", format, got, bad)
		}
		for i, b := range got {
			w := list[i]
			if b.KeyHash != w.KeyHash || b.KeyHint != w.KeyHint || b.Mode != w.Mode || b.Status != w.Status || b.Note != w.Note ||
				strings.Join(b.CIDRStrings(), " ") != strings.Join(w.CIDRStrings(), " ") || b.Origin != OriginImport ||
				b.LearnSlots != w.LearnSlots || !b.LearnUntil.Equal(w.LearnUntil) {
				t.Errorf("%s row %d: got %+v, want %+v", format, i+1, b, w)
			}
		}
	}
}

// Every bad row is reported at once, by row number, without repeating a value that could be a
// key; a valid row beside them is not enough to import anything.
func TestImportReportsEveryBadRow(t *testing.T) {
	const leaked = "sk-LeakedKey0123456789abcdefghijABCDEFGHIJ0123"
	csvText := "key_hash,mode,cidrs,status,key_hint,note,learn_slots,learn_until\n" +
		hashA + ",single,127.0.0.1,,,,,\n" + // 1: good
		leaked + ",single,127.0.0.1,,,,,\n" + // 2: a raw key where the hash goes
		hashB + ",single,10.0.0.5/24,,,,,\n" + // 3: host bits
		hashA + ",all,,,,,,\n" + // 4: the same key as row 1
		strings.Repeat("1", 64) + "," + leaked + ",,,,,,\n" + // 5: a key as the mode
		strings.Repeat("2", 64) + ",multiple,127.0.0.1 " + leaked + ",,,,,\n" + // 6: a key among the cidrs
		strings.Repeat("3", 64) + ",single,127.0.0.1,gone,,,,\n" + // 7: status
		strings.Repeat("4", 64) + ",single,127.0.0.1,," + leaked + ",,,\n" + // 8: a key as the hint
		strings.Repeat("5", 64) + ",all,,active,sk-abcd…wxyz,fine,,\n" + // 9: good
		strings.Repeat("6", 64) + ",learning,,,,,,\n" + // 10: a learning rule without its bounds
		strings.Repeat("7", 64) + ",learning,,,,,three,2027-01-01T00:00:00Z\n" + // 11: slots not a number
		strings.Repeat("8", 64) + ",learning,,,,,3,tomorrow\n" + // 12: not a time
		strings.Repeat("9", 64) + ",learning,,,,,3,2027-01-01T00:00:00Z\n" // 13: good
	rows, bad := ParseImport("csv", strings.NewReader(csvText))
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	_, _, bad = validateImport(rows)
	for _, e := range bad {
		if e.Row == 11 && !strings.Contains(e.Message, "learn_slots must be a number") || e.Row == 12 && !strings.Contains(e.Message, "learn_until must be an RFC 3339 time") {
			t.Errorf("row %d: %s", e.Row, e.Message)
		}
	}
	var got []int
	for _, e := range bad {
		got = append(got, e.Row)
		if strings.Contains(e.Message, "LeakedKey") || strings.Contains(strings.ToLower(e.Message), "leakedkey") {
			t.Errorf("row %d repeats the key: %s", e.Row, e.Message)
		}
	}
	if want := []int{2, 3, 4, 5, 6, 7, 8, 10, 11, 12}; !equalInts(got, want) {
		t.Fatalf("bad rows %v, want %v: %+v", got, want, bad)
	}
	for _, tt := range []struct {
		format, text, msg string
	}{
		{"csv", "", "header row"},
		{"csv", "key_hash,mode,secret\n", "header column 3"},
		{"csv", "key_hash\n" + hashA + "\n", "no mode column"},
		{"csv", "key_hash,mode\n" + hashA + ",all,extra\n", "not valid CSV"},
		{"json", `{"key_hash":"x"}`, "JSON array"},
		{"json", `[{"key_hash":"` + hashA + `","mode":"all","` + leaked + `":1}]`, "not a binding object"},
		{"json", `[{"key_hash":1}]`, "wrong type"},
		{"json", `[{"key_hash":"` + hashA + `","mode":"all"}] []`, "trailing"},
		{"xml", `<x/>`, "format must be"},
	} {
		_, bad := ParseImport(tt.format, strings.NewReader(tt.text))
		if len(bad) != 1 || !strings.Contains(bad[0].Message, tt.msg) || strings.Contains(bad[0].Message, "LeakedKey") {
			t.Errorf("%s %q: %+v, want one error containing %q", tt.format, tt.text, bad, tt.msg)
		}
	}
}

// A body that cannot be read (too large, cut off) is said to be so, not called malformed.
func TestImportUnreadableBody(t *testing.T) {
	for _, format := range []string{"csv", "json"} {
		body := io.MultiReader(strings.NewReader(map[string]string{"csv": "key_hash,mode\n", "json": "["}[format]), iotest.ErrReader(errors.New("http: request body too large")))
		_, bad := ParseImport(format, body)
		if len(bad) != 1 || !strings.Contains(bad[0].Message, "could not read the file (http: request body too large)") {
			t.Errorf("%s: %+v", format, bad)
		}
	}
}

func TestValidKeyHint(t *testing.T) {
	for s, want := range map[string]bool{"": true, "sk-…": true, "sk-abcd…wxyz": true, "sk-abcdefghwxyz": false,
		"abcd…wxyz": false, "sk-abc…wxyz": false, "sk-abcd…wxyz1": false, "sk-LeakedKey0123456789": false} {
		if ValidKeyHint(s) != want {
			t.Errorf("ValidKeyHint(%q) = %v", s, !want)
		}
	}
}

// FuzzImportNeverEchoesAKey: whatever the file, parsing and validating it never panics, every
// row it accepts is a valid binding, and no message repeats a run of 20 or more letters and
// digits from the file (a key is 48 of them).
func FuzzImportNeverEchoesAKey(f *testing.F) {
	f.Add("csv", "key_hash,mode,cidrs\n"+hashA+",single,127.0.0.1\n")
	f.Add("csv", "key_hash,mode,cidrs,note,key_hint\nsk-abcdefghijklmnopqrstuvwxyz0123,abcdefghijklmnopqrstuvwxyz,abcdefghijklmnopqrstuvwxyz0123,x,abcdefghijklmnopqrstuvwxyz\n")
	f.Add("json", `[{"key_hash":"`+hashA+`","mode":"multiple","cidrs":["10.0.0.0/8","abcdefghijklmnopqrstuvwxyz0123"]}]`)
	f.Add("json", `[{"abcdefghijklmnopqrstuvwxyz0123":1}]`)
	run := regexp.MustCompile(`[0-9A-Za-z]{20,}`)
	f.Fuzz(func(t *testing.T, format, text string) {
		rows, bad := ParseImport(format, strings.NewReader(text))
		list, _, vbad := validateImport(rows)
		for _, b := range list {
			if !contract.ValidKeyHash(b.KeyHash) || !ValidKeyHint(b.KeyHint) || (b.Mode != ModeAll && len(b.CIDRs) == 0) {
				t.Fatalf("accepted an invalid binding: %+v", b)
			}
		}
		for _, e := range append(bad, vbad...) {
			for _, r := range run.FindAllString(e.Message, -1) {
				if strings.Contains(text, r) {
					t.Fatalf("row %d message repeats %q from the file: %s", e.Row, r, e.Message)
				}
			}
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
