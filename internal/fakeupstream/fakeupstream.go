// Package fakeupstream is a stand-in for New API in tests and the demo: an OpenAI-compatible
// endpoint that answers JSON, or streams SSE when the query has stream=true.
package fakeupstream

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Server counts what reached it. When Hold is set, a stream sends its first chunk, then waits
// for Hold to close before the rest: a test can prove chunks are not buffered on the way.
type Server struct {
	Hold chan struct{}
	hits atomic.Int64
}

// Hits is the number of requests that reached the upstream.
func (s *Server) Hits() int { return int(s.hits.Load()) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	// Read the request first, as New API does: a server that answers before reading the
	// body leaves net/http to drain it and watch the connection, which can cancel the
	// request context mid-stream.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	if r.URL.Query().Get("stream") != "true" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"hello from the fake upstream"}}]}`+"\n")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n")
	if fl != nil {
		fl.Flush()
	}
	if s.Hold != nil {
		select {
		case <-s.Hold:
		case <-time.After(20 * time.Second):
		}
	}
	fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"second\"}}]}\n\n")
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}
