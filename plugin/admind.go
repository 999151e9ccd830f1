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

func newDecideRequest(m *middleware, req *http.Request, hash, hint string, ip netip.Addr) decideRequest {
	return decideRequest{
		Forwarded: m.opts.monitor,
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
//
// The common case, printable ASCII (and the key hint's ellipsis), is returned as it is after
// one compiled call; the rest goes to sanitizedField. Under Yaegi a call allocates every slot
// of the function it enters, and this one runs four times per decide.
func reportedField(s string) string {
	if len(s) <= maxReportedField && strings.Trim(s, reportedAsIs) == "" {
		return s
	}
	return sanitizedField(s)
}

// reportedAsIs are the characters a field may hold unchanged: printable ASCII and "…", which
// every key hint holds (identity.Hint).
const reportedAsIs = printableASCII + "…"

// sanitizedField is reportedField's reading of any other text. Under Yaegi its loop costs
// allocations on every iteration (a path and a User-Agent were 300 of them per decide).
func sanitizedField(s string) string {
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
	// header is every call's: JSON, and the internal token admind checks.
	header http.Header
}

// admindHeader is the header of every call to admind.
func admindHeader(token string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Bearer "+token)
	return h
}

// admindIdleConns bounds the idle connections kept to admind.
const admindIdleConns = 64

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
		return admindFailed(errAdmindRejected, "", err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return admindFailed(errAdmindUnavailable, "", err)
	}
	req.Header = a.header.Clone() // one compiled call: under Yaegi, cheaper than two Sets
	resp, err := a.http.Do(req)
	if err != nil {
		return admindFailed(errAdmindUnavailable, "", err)
	}
	// Closed without defer: under Yaegi a deferred call costs more than the rest of a
	// statement, and this runs on every decide.
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return admindFailed(errAdmindUnavailable, "reading the answer: ", err)
	}
	if resp.StatusCode != http.StatusOK {
		return admindStatus(resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return admindFailed(errAdmindRejected, "", err)
	}
	return nil
}

// admindFailed is a failed call to admind, of kind errAdmindUnavailable or errAdmindRejected.
// The errors are made here, not in admindPost: under Yaegi each fmt.Errorf there would add its
// slots to every call.
func admindFailed(kind error, what string, err error) error {
	return fmt.Errorf("%w: %s%s", kind, what, err.Error())
}

// admindStatus is admind's answer with a status other than 200: its 503 says it cannot decide
// now (the failsafe mode decides); any other refuses what we sent.
func admindStatus(code int) error {
	if code == http.StatusServiceUnavailable {
		return fmt.Errorf("%w: 503", errAdmindUnavailable)
	}
	return fmt.Errorf("%w: status %s", errAdmindRejected, strconv.Itoa(code))
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
