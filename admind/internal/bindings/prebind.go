package bindings

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// Pre-binding: an admin binds a key before its first use, so the key is refused everywhere
// but the customer's addresses from the start. The key is given by its hash (the API hashes a
// raw key first and forgets it). Nothing is written to Redis: an unbound key has no entry
// there, so the plugin's next request for it asks admind, which finds the new row.

// MaxNoteLen bounds a binding's note, in bytes.
const MaxNoteLen = 1000

// NewBinding is what an admin gives to pre-bind one key.
type NewBinding struct {
	KeyHash string
	KeyHint string // "" when only the hash is known
	Mode    Mode
	Entries []string  // the rule's addresses and CIDRs, as ParseRule takes them
	Learn   LearnRule // a learning rule's bounds; zero for the other modes
	// unreadable: an import cell that could not be read (its message names the column).
	unreadable error
	Status     Status // "" is active
	Note       string
}

// ConflictError: the key is bound already; its binding's rule can be changed instead.
type ConflictError struct{ ID int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the key is bound already (binding %d); change that binding's rule instead", e.ID)
}

// errChangedMeanwhile: a key reported bound was unbound again before it could be named.
var errChangedMeanwhile = &InputError{Message: "bindings changed while importing; try again"}

// Create pre-binds one key.
func (a *Admin) Create(ctx context.Context, who audit.Actor, nb NewBinding) (Binding, error) {
	b, err := nb.binding(OriginAdmin)
	if err != nil {
		return Binding{}, err
	}
	written := addBound(ctx, a.Bound, a.Log, b.KeyHash)
	created, bound, err := a.Store.CreateBindings(ctx, []Binding{b}, func(c []Binding) audit.Entry {
		return audit.Entry{Actor: who, Action: "binding.create", Target: fmt.Sprintf("binding:%d", c[0].ID), After: c[0].View()}
	})
	written()
	switch {
	case err != nil:
		return Binding{}, err
	case len(bound) > 0:
		return Binding{}, &ConflictError{ID: bound[b.KeyHash]}
	case len(created) != 1:
		return Binding{}, errChangedMeanwhile
	}
	a.Log.Info("binding created", "action", "binding.create", "actor", who.Name, "binding_id", created[0].ID,
		"key_hint", created[0].KeyHint, "after", created[0].View())
	return created[0], nil
}

// binding validates nb; messages never repeat a value that could be a key.
func (nb NewBinding) binding(origin Origin) (Binding, error) {
	if !contract.ValidKeyHash(nb.KeyHash) {
		return Binding{}, inputErrorf("key_hash must be a key hash: 64 lower-case hex digits, as the console and exports show it")
	}
	if !ValidKeyHint(nb.KeyHint) {
		return Binding{}, inputErrorf("key_hint must be empty or a key hint such as sk-abcd…wxyz")
	}
	if nb.unreadable != nil {
		return Binding{}, nb.unreadable
	}
	b := Binding{KeyHash: nb.KeyHash, KeyHint: nb.KeyHint, Origin: origin, Note: nb.Note}
	if err := setRule(&b, nb.Mode, nb.Entries, nb.Learn); err != nil {
		return Binding{}, err
	}
	status := nb.Status
	switch status {
	case "":
		status = StatusActive
	case StatusActive, StatusBanned:
	default:
		return Binding{}, inputErrorf(`status must be "active" or "banned"`)
	}
	if err := checkNote(nb.Note); err != nil {
		return Binding{}, err
	}
	b.Status = status
	return b, nil
}

// ValidKeyHint reports whether s is empty or has the form of a key hint (the plugin's
// keyHint: "sk-" and the first and last four characters, or "sk-…" for a short key). A hint
// is shown in lists and logs, so anything longer could be a key and is refused.
func ValidKeyHint(s string) bool {
	if s == "" || s == "sk-…" {
		return true
	}
	rest, ok := strings.CutPrefix(s, "sk-")
	if !ok || len(s) > contract.MaxHintLen || utf8.RuneCountInString(rest) != 9 {
		return false
	}
	r := []rune(rest)
	return r[4] == '…'
}

// ImportError lists every row an import refused; nothing was imported.
type ImportError struct{ Rows []RowError }

func (e *ImportError) Error() string {
	return fmt.Sprintf("%d rows are invalid; nothing was imported", len(e.Rows))
}

// RowError is one refused row of an import; Row counts bindings from 1 (a CSV header is not
// a row); Row 0 is the file as a whole.
type RowError struct {
	Row     int    `json:"row"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Import pre-binds every row, or none: a row that is invalid, repeats another's key or names
// a key bound already makes the whole import fail with every such row listed.
func (a *Admin) Import(ctx context.Context, who audit.Actor, format string, rows []NewBinding) (int, error) {
	if len(rows) == 0 {
		return 0, &ImportError{Rows: []RowError{{Row: 0, Message: "the file holds no bindings"}}}
	}
	if len(rows) > MaxImportRows {
		return 0, &ImportError{Rows: []RowError{{Row: 0, Message: fmt.Sprintf("at most %d bindings per import, got %d", MaxImportRows, len(rows))}}}
	}
	list, rowOf, bad := validateImport(rows)
	if len(bad) > 0 {
		return 0, &ImportError{Rows: bad}
	}
	hashes := make([]string, len(list))
	for i, b := range list {
		hashes[i] = b.KeyHash
	}
	written := addBound(ctx, a.Bound, a.Log, hashes...)
	created, bound, err := a.Store.CreateBindings(ctx, list, func(c []Binding) audit.Entry {
		lo, hi := c[0].ID, c[0].ID
		for _, b := range c {
			lo, hi = min(lo, b.ID), max(hi, b.ID)
		}
		return audit.Entry{Actor: who, Action: "binding.import", Target: "bindings",
			After: map[string]any{"format": format, "count": len(c), "first_id": lo, "last_id": hi}}
	})
	written()
	if err != nil {
		return 0, err
	}
	if len(bound) > 0 {
		for _, b := range list { // in row order
			if id, ok := bound[b.KeyHash]; ok {
				bad = append(bad, RowError{Row: rowOf[b.KeyHash], Field: "key_hash", Message: (&ConflictError{ID: id}).Error()})
			}
		}
		return 0, &ImportError{Rows: bad}
	}
	if len(created) != len(list) {
		return 0, errChangedMeanwhile
	}
	a.Log.Info("bindings imported", "action", "binding.import", "actor", who.Name, "format", format, "count", len(created))
	return len(created), nil
}

// validateImport checks every row; rowOf gives each key's row.
func validateImport(rows []NewBinding) (list []Binding, rowOf map[string]int, bad []RowError) {
	list = make([]Binding, 0, len(rows))
	rowOf = make(map[string]int, len(rows))
	for i, nb := range rows {
		b, err := nb.binding(OriginImport)
		if err != nil {
			bad = append(bad, RowError{Row: i + 1, Message: nb.redact(err.Error())})
			continue
		}
		if first, dup := rowOf[b.KeyHash]; dup {
			bad = append(bad, RowError{Row: i + 1, Field: "key_hash", Message: fmt.Sprintf("the same key as row %d", first)})
			continue
		}
		rowOf[b.KeyHash] = i + 1
		list = append(list, b)
	}
	return list, rowOf, bad
}

// Export calls fn for every binding, after recording the export in admin_audit.
func (a *Admin) Export(ctx context.Context, who audit.Actor, format string, fn func(Binding) error) error {
	if err := a.Store.RecordAudit(ctx, audit.Entry{Actor: who, Action: "binding.export", Target: "bindings",
		After: map[string]any{"format": format}}); err != nil {
		return err
	}
	return a.Store.EachBinding(ctx, fn)
}

// redact replaces the mode and each rule entry quoted in a ParseRule message by what they are:
// an import's rows are not typed in by the admin reading the answer, and a value in the
// wrong column could be a key.
func (nb NewBinding) redact(msg string) string {
	msg = strings.ReplaceAll(msg, fmt.Sprintf("%q", truncate(string(nb.Mode))), "the mode given")
	for i, e := range nb.Entries {
		msg = strings.ReplaceAll(msg, fmt.Sprintf("%q", truncate(e)), fmt.Sprintf("cidrs entry %d", i+1))
	}
	return msg
}

// checkNote refuses a note that is not UTF-8 text without NUL of at most MaxNoteLen bytes.
func checkNote(note string) error {
	if len(note) > MaxNoteLen || !utf8.ValidString(note) || strings.IndexByte(note, 0) >= 0 {
		return inputErrorf("note must be UTF-8 text without NUL of at most %d bytes", MaxNoteLen)
	}
	return nil
}
