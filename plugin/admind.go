package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

func newDecideRequest(req *http.Request, hash, hint string, ip netip.Addr) decideRequest {
	return decideRequest{
		KeyHash:   hash,
		KeyHint:   reportedField(hint),
		IP:        ip.String(),
		Method:    reportedField(req.Method),
		Path:      reportedField(req.URL.Path),
		UserAgent: reportedField(req.UserAgent()),
	}
}

// reportedField is attacker text made fit for admind by construction: valid UTF-8 (each
// invalid byte and each control character, NUL included, becomes U+FFFD), cut on a rune
// boundary to at most maxReportedField bytes. JSON encoding then changes nothing, so what
// admind checks is what this returns.
func reportedField(s string) string {
	// The common case, printable ASCII, is returned as it is. One compiled call tells: under
	// Yaegi a loop over the bytes costs allocations on every iteration (a path and a
	// User-Agent were 300 of them per decide).
	if len(s) <= maxReportedField && strings.Trim(s, printableASCII) == "" {
		return s
	}
	var b strings.Builder
	for _, r := range s { // ranging over a string yields U+FFFD for each invalid byte
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > maxReportedField {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// printableASCII is every byte from 0x20 (space) to 0x7e (~).
const printableASCII = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"

type admindClient struct {
	http         *http.Client
	decideURL    string
	interceptURL string
	confirmURL   string
	releaseURL   string
	token        string
}

// admindIdleConns bounds the idle connections kept to admind.
const admindIdleConns = 16

func newAdmindHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			// A burst of misses (Redis down) may open many connections; keep few of them idle,
			// and not for long.
			MaxIdleConns:        admindIdleConns,
			MaxIdleConnsPerHost: admindIdleConns,
			IdleConnTimeout:     30 * time.Second,
		},
		// admind never redirects; following one could leak the internal token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// admindDecide asks admind, which owns PostgreSQL and creates first-use bindings.
func admindDecide(a *admindClient, dr decideRequest) (*decideResponse, error) {
	var out decideResponse
	if err := admindPost(a, a.decideURL, dr, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// admindConfirm tells admind New API served a claimed key's request: admind binds the key and
// answers with the binding (which refuses the request if, meanwhile, the key was bound to
// someone else).
func admindConfirm(a *admindClient, dr decideRequest) (*decideResponse, error) {
	var out decideResponse
	if err := admindPost(a, a.confirmURL, dr, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// admindRelease tells admind New API did not serve it: admind forgets the claim.
func admindRelease(a *admindClient, dr decideRequest) error {
	return admindPost(a, a.releaseURL, dr, nil)
}

// admindReport is the fallback when the event cannot go to the Redis stream.
func admindReport(a *admindClient, dr decideRequest) error {
	return admindPost(a, a.interceptURL, dr, nil)
}

// The two ways a call to admind fails. Only errAdmindUnavailable (no connection, no answer in
// time, or admind's own 503 "cannot decide now" while PostgreSQL is away) hands the request to
// the failsafe mode. errAdmindRejected is admind refusing what we sent (any other status, or
// a body that is not its answer): a bug or an attack, so it never forwards a request.
var (
	errAdmindUnavailable = errors.New("admind could not decide in time")
	errAdmindRejected    = errors.New("admind rejected the request")
)

func admindPost(a *admindClient, url string, body interface{}, out interface{}) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: %s", errAdmindRejected, err.Error())
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %s", errAdmindUnavailable, err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s", errAdmindUnavailable, err.Error())
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: reading the answer: %s", errAdmindUnavailable, err.Error())
	}
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: 503", errAdmindUnavailable)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: status %s", errAdmindRejected, strconv.Itoa(resp.StatusCode))
	case out == nil:
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%w: %s", errAdmindRejected, err.Error())
	}
	return nil
}

// logLimiter lets at most one line a second through.
type logLimiter struct{ last atomic.Int64 }

// logAllowed reports whether a line may be logged at now, and counts it if so.
func logAllowed(l *logLimiter, now time.Time) bool {
	t, prev := now.UnixNano(), l.last.Load()
	return t-prev >= int64(time.Second) && l.last.CompareAndSwap(prev, t)
}

// bindingFromReply converts admind's binding into the cached form; nil when admind sent none.
func bindingFromReply(r *bindingReply) (*binding, error) {
	if r == nil {
		return nil, nil
	}
	return parseBindingEntry(entryVersion + entrySeparator + r.Status + entrySeparator + r.Mode + entrySeparator + strings.Join(r.CIDRs, cidrSeparator))
}
