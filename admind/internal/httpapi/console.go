package httpapi

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// ConsolePrefix is where the admin console is served.
const ConsolePrefix = "/admin/ui/"

// notBuilt is served when admind was built without the console (no Node on that machine).
const notBuilt = `<!doctype html><html><head><meta charset="utf-8"><title>Key-IP Sentinel</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Admin console not built</h1>
<p>This admind was built without the web console. Build it with <code>make web</code> (Node.js 20
and npm), then rebuild admind (<code>make build</code>). The admin API at <code>/admin/api/</code>
works either way.</p></body></html>`

// handleConsole serves the single-page console from files: hashed assets are cached for a
// year, index.html never; a path that names a missing file (it has an extension) is a plain
// 404, any other path is a route of the app and gets index.html.
func handleConsole(files fs.FS) http.Handler {
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		index = nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// Element Plus sets inline styles; scripts come from this origin only.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		name := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(r.URL.Path, ConsolePrefix)), "/")
		if name != "" && name != "index.html" {
			if f, err := files.Open(name); err == nil {
				st, err := f.Stat()
				_ = f.Close()
				if err == nil && !st.IsDir() {
					if strings.HasPrefix(name, "assets/") {
						h.Set("Cache-Control", "public, max-age=31536000, immutable")
					}
					http.ServeFileFS(w, r, files, name) //nolint:gosec // G703: name is path.Clean of a rooted path, in the embedded console
					return
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			if path.Ext(name) != "" {
				http.Error(w, "404 page not found", http.StatusNotFound)
				return
			}
		}
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/html; charset=utf-8")
		if index == nil {
			http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(notBuilt))
			return
		}
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
}
