package httpapi

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"mime"
	"net/http"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// Pre-binding through the admin API: create one binding before its key is used, import many,
// export all. See bindings/prebind.go and bindings/transfer.go.

// maxImportBytes bounds an import's body: MaxImportRows rows of a full export fit.
const maxImportBytes = 32 << 20

type importErrorBody struct {
	Error struct {
		Code    string              `json:"code"`
		Message string              `json:"message"`
		Rows    []bindings.RowError `json:"rows"`
	} `json:"error"`
}

// handleCreateBinding pre-binds one key, given raw (hashed here, as the plugin would, and
// never stored or echoed) or by its hash.
func handleCreateBinding(d Deps) http.Handler {
	type request struct {
		Key     string   `json:"key"`
		KeyHash string   `json:"key_hash"`
		Mode    string   `json:"mode"`
		CIDRs   []string `json:"cidrs"`
		Status  string   `json:"status"`
		Note    string   `json:"note"`
		// A learning rule's slots and window (seconds from now); the settings' when 0.
		LearnSlots         int `json:"learn_slots"`
		LearnWindowSeconds int `json:"learn_window_seconds"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decode(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body")
			return
		}
		nb := bindings.NewBinding{KeyHash: req.KeyHash, Mode: bindings.Mode(req.Mode), Entries: req.CIDRs,
			Status: bindings.Status(req.Status), Note: req.Note}
		var err error
		if nb.Learn, err = learnRule(d, req.Mode, req.LearnSlots, req.LearnWindowSeconds); err != nil {
			writeFailure(w, d, r, err)
			return
		}
		switch {
		case (req.Key == "") == (req.KeyHash == ""):
			writeError(w, http.StatusBadRequest, "bad_request", "give either key (the API key) or key_hash")
			return
		case req.Key != "":
			hash, isKey := identity.HashRawKey(d.HMACSecret, req.Key)
			if !isKey {
				writeError(w, http.StatusBadRequest, "bad_request", "key is not an API key New API could have issued")
				return
			}
			nb.KeyHash, nb.KeyHint = hash, identity.HintRawKey(req.Key)
		}
		b, err := d.Admin.Create(r.Context(), actor(d, r), nb)
		if err != nil {
			writeFailure(w, d, r, err)
			return
		}
		encode(w, http.StatusCreated, viewBinding(b, d.Now()))
	})
}

// transferFormat reads ?format=, else the request's Content-Type; "" when neither says.
func transferFormat(r *http.Request) string {
	switch f := r.URL.Query().Get("format"); f {
	case "csv", "json":
		return f
	case "":
	default:
		return ""
	}
	t, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch t {
	case "text/csv":
		return "csv"
	case "application/json":
		return "json"
	}
	return ""
}

// handleImportBindings pre-binds every row of a CSV or JSON file, or none (bindings.Admin.Import).
func handleImportBindings(d Deps) http.Handler {
	type response struct {
		Imported int `json:"imported"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := transferFormat(r)
		if format == "" {
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send text/csv or application/json (or ?format=csv|json)")
			return
		}
		rows, bad := bindings.ParseImport(format, http.MaxBytesReader(w, r.Body, maxImportBytes))
		var err error
		if len(bad) > 0 {
			err = &bindings.ImportError{Rows: bad}
		} else {
			var n int
			if n, err = d.Admin.Import(r.Context(), actor(d, r), format, rows); err == nil {
				encode(w, http.StatusOK, response{Imported: n})
				return
			}
		}
		writeFailure(w, d, r, err)
	})
}

// handleExportBindings streams every binding as CSV or JSON (by hash; a raw key is never
// known to admind), straight from the database cursor.
func handleExportBindings(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := r.URL.Query().Get("format")
		if format == "" {
			format = "csv"
		}
		if format != "csv" && format != "json" {
			writeError(w, http.StatusBadRequest, "bad_request", `format must be "csv" or "json"`)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
		w.Header().Set("Content-Disposition", `attachment; filename="sentinel-bindings-`+time.Now().UTC().Format("20060102-150405")+`.`+format+`"`)
		w.Header().Set("Cache-Control", "no-store")
		bw := bufio.NewWriterSize(w, 64<<10)
		var write func(bindings.TransferRecord) error
		n := 0
		if format == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			cw := csv.NewWriter(bw)
			_ = cw.Write(bindings.TransferColumns)
			write = func(rec bindings.TransferRecord) error {
				_ = cw.Write(rec.CSVRow())
				cw.Flush()
				return cw.Error()
			}
		} else {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = bw.WriteString("[")
			enc := json.NewEncoder(bw)
			write = func(rec bindings.TransferRecord) error {
				if n > 0 {
					_, _ = bw.WriteString(",")
				}
				return enc.Encode(rec)
			}
		}
		err := d.Admin.Export(r.Context(), actor(d, r), format, func(b bindings.Binding) error {
			if err := write(b.TransferRecord()); err != nil {
				return err
			}
			if n++; n%1000 == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
				_ = rc.Flush()
			}
			return nil
		})
		if err != nil && n == 0 { // nothing has left the buffer: an error can still be answered
			w.Header().Del("Content-Disposition")
			writeFailure(w, d, r, err)
			return
		}
		if err == nil && format == "json" {
			_, err = bw.WriteString("]\n")
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			// The status is sent already: cut the connection so the client sees an incomplete
			// download instead of a short file that looks whole.
			d.Log.Error("binding export failed", "rows_written", n, "err", err)
			panic(http.ErrAbortHandler)
		}
	})
}
