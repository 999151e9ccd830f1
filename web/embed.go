// Package web holds the admin console (a Vue 3 + Element Plus app, built by `make web` into
// dist/) for admind to embed. A clone without Node still compiles: dist/ then holds only
// .keep, and admind serves a page that says how to build the console.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist is the built console (the contents of dist/).
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded: cannot fail
	}
	return sub
}
