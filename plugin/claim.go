package plugin

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// A key admind has no binding for is claimed for its first client (admind's bindings/
// claims.go): the request goes to New API, and New API's answer decides whether the key binds.
// A success (2xx, or 101 for an upgrade) means New API authenticated the key: the claim is
// confirmed and the key bound before the client sees the answer's header. Anything else (New
// API's 401 for a string that is no key of its, an error of its own, Traefik's 502 when it is
// down) releases the claim: no binding, and nothing to log. Only first uses take this path.
//
// If admind's answer to the confirmation refuses the client (the claim had expired and the
// key was bound to someone else meanwhile), the client gets that refusal instead of New API's
// answer, whose header has not gone out yet.

// serveClaimed forwards a request under admind's claim for the unbound key and reports New
// API's answer.
func serveClaimed(m *middleware, rw http.ResponseWriter, req *http.Request, key, spelled string, ip netip.Addr, claim string) {
	dr := decideRequest{KeyHash: hashKey(m, key), KeyHint: reportedField(identity.Hint(spelled)), IP: ip.String(), Claim: claim}
	w := &claimWriter{ResponseWriter: rw, m: m, req: req, key: key, dr: dr, epoch: cacheEpoch(m.cache)}
	m.next.ServeHTTP(w, req)
	if !w.reported {
		reportAnswer(w, 0) // no answer at all (the client went away): release
	}
}

// claimWriter sees the status of the answer to a claimed request. Under Yaegi, compiled code
// sees an interpreted ResponseWriter through a wrapper that offers http.Hijacker but never
// http.Flusher (traefik/yaegi#1600), so Write flushes each chunk itself: a first use's
// stream arrives as it is written.
type claimWriter struct {
	http.ResponseWriter
	m        *middleware
	req      *http.Request
	key      string
	dr       decideRequest
	epoch    int64
	reported bool
	refused  bool // admind refused the confirmation: New API's answer is dropped
}

func (w *claimWriter) WriteHeader(code int) {
	if !w.reported && (code >= 200 || code == http.StatusSwitchingProtocols) {
		reportAnswer(w, code)
	}
	if !w.refused {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *claimWriter) Write(p []byte) (int, error) {
	if !w.reported {
		reportAnswer(w, http.StatusOK)
	}
	if w.refused {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	w.Flush()
	return n, err
}

func (w *claimWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is how Traefik's proxy takes over a connection New API upgraded (it answered 101).
func (w *claimWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("sentinel: the connection cannot be hijacked")
	}
	if !w.reported {
		reportAnswer(w, http.StatusSwitchingProtocols)
	}
	if w.refused {
		return nil, nil, errors.New("sentinel: the key is bound to another client")
	}
	return h.Hijack()
}

// reportAnswer confirms the claim on a success, releases it otherwise.
func reportAnswer(w *claimWriter, code int) {
	w.reported = true
	if code != http.StatusSwitchingProtocols && (code < 200 || code >= 300) {
		if err := admindRelease(w.m.admin, w.dr); err != nil {
			logClaimFailure(w, "release", err) // an unreleased claim expires
		}
		return
	}
	resp, err := admindConfirm(w.m.admin, w.dr)
	switch {
	case errors.Is(err, errAdmindRejected):
		refuseClaimed(w, codeIPNotAllowed) // the claim no longer holds the key: someone else's now
	case err != nil:
		// admind is away: the claim still holds the key for this client alone, so its
		// answer goes out; the client's next request claims and confirms again.
		logClaimFailure(w, "confirm", err)
	case !resp.Allow:
		code := codeIPNotAllowed
		if resp.Reason == codeKeyBanned {
			code = codeKeyBanned
		}
		refuseClaimed(w, code)
	default:
		if b, err := bindingFromReply(resp.Binding); err == nil && b != nil {
			b.hash = w.dr.KeyHash
			rememberFromAdmind(w.m, w.key, b, resp.CacheTTLS, cacheView{now: cacheClock(), epoch: w.epoch})
			if w.m.redis != nil {
				countAllowed(&w.m.redis.usage, b)
			}
		}
	}
}

// refuseClaimed answers the client in place of New API (monitor mode lets New API's answer
// through), and records the intercept: the key is bound to another client.
func refuseClaimed(w *claimWriter, code string) {
	if ip, err := netip.ParseAddr(w.dr.IP); err == nil {
		reportIntercept(w.m, w.req, w.dr.KeyHash, w.dr.KeyHint, ip, code)
	}
	if w.m.opts.monitor {
		return
	}
	w.refused = true
	h := w.ResponseWriter.Header() //nolint:staticcheck // QF1008: the wrapped writer's header, named so
	for k := range h {
		delete(h, k) // New API's header, set by Traefik's proxy before WriteHeader
	}
	refuse(w.ResponseWriter, http.StatusForbidden, code)
}

// logClaimFailure says on Traefik's log, at most once a second, that a claim could not be
// confirmed or released.
func logClaimFailure(w *claimWriter, what string, err error) {
	if logAllowed(&w.m.claimLog, time.Now()) {
		fmt.Fprintf(os.Stderr, "sentinel[%s]: could not %s a first-use claim: %v\n", w.m.name, what, err)
	}
}
