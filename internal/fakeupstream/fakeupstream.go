// Package fakeupstream is a stand-in for New API in tests and the demo, and for New API's
// upstream channel: an OpenAI-compatible endpoint that answers JSON (a model list on
// /v1/models, a chat completion elsewhere), or streams SSE when the query has stream=true or
// the JSON body asks for a stream (as New API relays one).
package fakeupstream

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Server counts what reached it. When Hold is set, a stream sends its first chunk, then waits
// for Hold to close before the rest: a test can prove chunks are not buffered on the way.
type Server struct {
	Hold chan struct{}
	// Lookahead is how many more chunks ("ahead") go before the hold: New API relays a chunk
	// only once the next one arrived, so a test through it needs 1.
	Lookahead int
	hits      atomic.Int64
	issued    atomic.Pointer[[]string] // AcceptOnly's prefixes; nil: every key
	refused   atomic.Int64
}

// AcceptOnly makes the server answer New API's invalid-token 401 to every bearer key that
// does not start (after "sk-") with one of prefixes, as New API answers a string it never
// issued; no prefixes accepts every key again.
func (s *Server) AcceptOnly(prefixes ...string) {
	if len(prefixes) == 0 {
		s.issued.Store(nil)
		return
	}
	s.issued.Store(&prefixes)
}

// Refused is the number of requests answered 401 under AcceptOnly.
func (s *Server) Refused() int { return int(s.refused.Load()) }

func (s *Server) knownKey(r *http.Request) bool {
	prefixes := s.issued.Load()
	if prefixes == nil {
		return true
	}
	key := strings.TrimPrefix(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "sk-")
	for _, p := range *prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Hits is the number of requests that reached the upstream.
func (s *Server) Hits() int { return int(s.hits.Load()) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	// Read the request first, as New API does: a server that answers before reading the
	// body leaves net/http to drain it and watch the connection, which can cancel the
	// request context mid-stream.
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var req struct {
		Stream bool `json:"stream"`
	}
	_ = json.Unmarshal(body, &req)
	if !s.knownKey(r) {
		s.refused.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"无效的令牌 (request id: fake)","type":"new_api_error"}}`+"\n")
		return
	}
	if r.URL.Path == "/v1/models" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"fakeupstream"}]}`+"\n")
		return
	}
	if r.URL.Query().Get("stream") != "true" && !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"hello from the fake upstream"}}]}`+"\n")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	fmt.Fprint(w, chunk("first"))
	for i := 0; i < s.Lookahead; i++ {
		fmt.Fprint(w, chunk("ahead"))
	}
	if fl != nil {
		fl.Flush()
	}
	if s.Hold != nil {
		select {
		case <-s.Hold:
		case <-time.After(20 * time.Second):
		}
	}
	fmt.Fprint(w, chunk("second"))
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

// chunk is one SSE event of an OpenAI chat completion stream, complete enough for New API to
// relay it.
func chunk(content string) string {
	return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
}
