// Package noop is the baseline of `make bench`: a Traefik plugin that does nothing but call
// the next handler, so the benchmark can tell the interpreter's cost from Sentinel's.
package noop

import (
	"context"
	"net/http"
)

// Config has no options.
type Config struct{}

// CreateConfig returns the empty configuration.
func CreateConfig() *Config { return &Config{} }

// New returns next itself wrapped in one interpreted call.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &noop{next: next}, nil
}

type noop struct{ next http.Handler }

func (n *noop) ServeHTTP(rw http.ResponseWriter, req *http.Request) { n.next.ServeHTTP(rw, req) }
