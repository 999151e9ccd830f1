package bindings

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Bulk transfer: bindings leave as an export and come back as an import, by key hash only (a
// raw key is never in either). One record, in CSV (a header row, then one row per binding,
// cidrs separated by spaces) or JSON (an array of objects):
//
//	key_hash, key_hint, mode, cidrs, status, note   what an import reads (key_hash, mode required)
//	learn_slots, learn_until                        a learning rule's bounds (RFC 3339), read too
//	origin, first_ip, created_at, last_used_at      the binding's history: exported, ignored on import
//
// Hashes are HMACs under the instance's SENTINEL_HMAC_SECRET: an export imports only where
// the same secret is set.

// MaxImportRows bounds one import (the request body is bounded too).
const MaxImportRows = 100_000

// TransferColumns are the CSV columns, in an export's order.
var TransferColumns = []string{"key_hash", "key_hint", "mode", "cidrs", "status", "note", "learn_slots", "learn_until",
	"origin", "first_ip", "created_at", "last_used_at"}

// TransferRecord is one binding in an export or an import.
type TransferRecord struct {
	KeyHash    string     `json:"key_hash"`
	KeyHint    string     `json:"key_hint"`
	Mode       Mode       `json:"mode"`
	CIDRs      []string   `json:"cidrs"`
	Status     Status     `json:"status"`
	Note       string     `json:"note"`
	LearnSlots int        `json:"learn_slots,omitempty"`
	LearnUntil *time.Time `json:"learn_until,omitempty"`
	Origin     Origin     `json:"origin,omitempty"`
	FirstIP    string     `json:"first_ip,omitempty"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// TransferRecord is b as an export shows it.
func (b Binding) TransferRecord() TransferRecord {
	r := TransferRecord{KeyHash: b.KeyHash, KeyHint: b.KeyHint, Mode: b.Mode, CIDRs: b.CIDRStrings(), Status: b.Status,
		Note: b.Note, Origin: b.Origin}
	if b.FirstIP.IsValid() {
		r.FirstIP = b.FirstIP.String()
	}
	if b.Mode == ModeLearning {
		until := b.LearnUntil.UTC()
		r.LearnSlots, r.LearnUntil = b.LearnSlots, &until
	}
	created := b.CreatedAt.UTC()
	r.CreatedAt = &created
	if !b.LastUsedAt.IsZero() {
		used := b.LastUsedAt.UTC()
		r.LastUsedAt = &used
	}
	return r
}

// CSVRow is r in TransferColumns order. Text a spreadsheet would run as a formula (a note
// starting with = + - @) gets a leading ', which ParseCSV takes off again.
func (r TransferRecord) CSVRow() []string {
	slots, until, created, used := "", "", "", ""
	if r.LearnUntil != nil {
		slots, until = strconv.Itoa(r.LearnSlots), r.LearnUntil.Format(time.RFC3339Nano)
	}
	if r.CreatedAt != nil {
		created = r.CreatedAt.Format(time.RFC3339Nano)
	}
	if r.LastUsedAt != nil {
		used = r.LastUsedAt.Format(time.RFC3339Nano)
	}
	return []string{r.KeyHash, r.KeyHint, string(r.Mode), strings.Join(r.CIDRs, " "), string(r.Status),
		guardFormula(r.Note), slots, until, string(r.Origin), r.FirstIP, created, used}
}

func (r TransferRecord) newBinding() NewBinding {
	nb := NewBinding{KeyHash: r.KeyHash, KeyHint: r.KeyHint, Mode: r.Mode, Entries: r.CIDRs, Status: r.Status, Note: r.Note}
	nb.Learn.Slots = r.LearnSlots
	if r.LearnUntil != nil {
		nb.Learn.Until = *r.LearnUntil
	}
	return nb
}

// csvLearnRule reads a CSV row's learn_slots and learn_until cells.
func csvLearnRule(slots, until string) (LearnRule, error) {
	var l LearnRule
	var err error
	if slots = strings.TrimSpace(slots); slots != "" {
		if l.Slots, err = strconv.Atoi(slots); err != nil {
			return l, inputErrorf("learn_slots must be a number")
		}
	}
	if until = strings.TrimSpace(until); until != "" {
		if l.Until, err = time.Parse(time.RFC3339Nano, until); err != nil {
			return l, inputErrorf("learn_until must be an RFC 3339 time, such as 2026-12-31T00:00:00Z")
		}
	}
	return l, nil
}

const formulaStarts = "=+-@\t\r"

// guardFormula keeps spreadsheet programs from running a cell (OWASP's advice for CSV
// injection); unguardFormula undoes it.
func guardFormula(s string) string {
	if s != "" && strings.ContainsRune(formulaStarts, rune(s[0])) {
		return "'" + s
	}
	return s
}

func unguardFormula(s string) string {
	if len(s) > 1 && s[0] == '\'' && strings.ContainsRune(formulaStarts, rune(s[1])) {
		return s[1:]
	}
	return s
}

// ParseImport reads an import in format "csv" or "json". A malformed file gives one error for
// the file (Row 0) or for the row where reading stopped; Admin.Import validates every row.
func ParseImport(format string, r io.Reader) ([]NewBinding, []RowError) {
	switch format {
	case "csv":
		return parseCSV(r)
	case "json":
		return parseJSON(r)
	}
	return nil, []RowError{{Message: `format must be "csv" or "json"`}}
}

func parseCSV(r io.Reader) ([]NewBinding, []RowError) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, []RowError{{Message: "not a CSV file with a header row naming its columns (" + strings.Join(TransferColumns, ",") + ")"}}
	}
	col := map[string]int{}
	for i, name := range header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")) // spreadsheets may write a BOM
		known := false
		for _, c := range TransferColumns {
			known = known || c == name
		}
		if !known {
			// Not echoed: a file without a header has a binding's values here.
			return nil, []RowError{{Message: fmt.Sprintf("header column %d is not one of %s", i+1, strings.Join(TransferColumns, ", "))}}
		}
		if _, dup := col[name]; dup {
			return nil, []RowError{{Message: "the header names " + name + " twice"}}
		}
		col[name] = i
	}
	for _, need := range []string{"key_hash", "mode"} {
		if _, ok := col[need]; !ok {
			return nil, []RowError{{Message: "the header has no " + need + " column"}}
		}
	}
	cell := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return rec[i]
		}
		return ""
	}
	var out []NewBinding
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			// Neither message quotes a field: the parser's says what is wrong where, the
			// body's says it could not be read (too large, cut off).
			var pe *csv.ParseError
			msg := "could not read the file (" + err.Error() + ")"
			if errors.As(err, &pe) {
				msg = fmt.Sprintf("not valid CSV (line %d: %v)", pe.Line, pe.Err)
			}
			return nil, []RowError{{Row: row, Message: msg}}
		}
		if row > MaxImportRows {
			return nil, []RowError{{Message: fmt.Sprintf("at most %d bindings per import", MaxImportRows)}}
		}
		learn, learnErr := csvLearnRule(cell(rec, "learn_slots"), cell(rec, "learn_until"))
		out = append(out, NewBinding{
			KeyHash: strings.TrimSpace(cell(rec, "key_hash")), KeyHint: strings.TrimSpace(cell(rec, "key_hint")),
			Mode: Mode(strings.TrimSpace(cell(rec, "mode"))), Entries: splitEntries(cell(rec, "cidrs")),
			Status: Status(strings.TrimSpace(cell(rec, "status"))), Note: unguardFormula(cell(rec, "note")),
			Learn: learn, unreadable: learnErr,
		})
	}
}

// splitEntries reads a CSV cidrs cell: entries separated by spaces or commas.
func splitEntries(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}

func parseJSON(r io.Reader) ([]NewBinding, []RowError) {
	dec := json.NewDecoder(r)
	notArray := func(err error) []RowError {
		if err != nil && !isJSONSyntax(err) {
			return []RowError{{Message: "could not read the file (" + err.Error() + ")"}}
		}
		return []RowError{{Message: "not a JSON array of bindings"}}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, notArray(err)
	}
	var out []NewBinding
	for row := 1; dec.More(); row++ {
		if row > MaxImportRows {
			return nil, []RowError{{Message: fmt.Sprintf("at most %d bindings per import", MaxImportRows)}}
		}
		var rec TransferRecord
		// Field by field, so an unknown field is refused (a typo would otherwise drop a value).
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			e := notArray(err)[0]
			if isJSONSyntax(err) {
				e.Message = "not valid JSON"
			}
			e.Row = row
			return nil, []RowError{e}
		}
		strict := json.NewDecoder(strings.NewReader(string(raw)))
		strict.DisallowUnknownFields()
		if err := strict.Decode(&rec); err != nil {
			return nil, []RowError{{Row: row, Message: "not a binding object: " + jsonProblem(err)}}
		}
		out = append(out, rec.newBinding())
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return nil, notArray(err)
	}
	if dec.More() {
		return nil, []RowError{{Message: "trailing data after the array"}}
	}
	return out, nil
}

// isJSONSyntax: err is the text's fault, not the reader's, so its message is not shown: a
// type error quotes the value (a number too large for float64, in full).
func isJSONSyntax(err error) bool {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syntax) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// jsonProblem names what is wrong without quoting a value.
func jsonProblem(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("field %s has the wrong type", typ.Field)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return "a field that is not one of " + strings.Join(TransferColumns, ", ") // its name could be anything
	}
	return "malformed object"
}
