// Package migrations holds admind's numbered SQL migrations, embedded into the binary and
// applied at start (goose).
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
