package plugin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	neturl "net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAPIKey: never panics; a key is its canonical form (lower-case letters and digits
// only: no "sk-", no "-", nothing a database collation could fold) of the spelling it came
// from.
func FuzzAPIKey(f *testing.F) {
	f.Add("/v1/chat", "Bearer sk-abc-1", "abc", "key=abc", "realtime, openai-insecure-api-key.abc", "")
	f.Add("/api/user", "Bearer x", "", "", "", "sk-y")
	f.Add("/api/../v1", "bearer  ", "  ", "k%65y=%zz", ",,", "Bearer midjourney-proxy")
	noErr := func(format string, args ...interface{}) { f.Fatalf(format, args...) }
	s := &options{
		dashboardRoutes: parseRoutes("dashboardRoutes", newAPIDashboardRoutes, noErr),
		keyRoutes:       parseRoutes("keyRoutes", newAPIKeyRoutes, noErr),
		routeVerdicts:   newRouteVerdicts(),
	}
	f.Fuzz(func(t *testing.T, path, auth, xAPIKey, query, ws, mj string) {
		req := &http.Request{Method: "POST", Header: http.Header{}}
		req.URL = &neturl.URL{Path: path, RawQuery: query}
		req.Header["Authorization"] = []string{auth}
		req.Header["X-Api-Key"] = []string{xAPIKey}
		req.Header["Sec-Websocket-Protocol"] = []string{ws}
		req.Header["Mj-Api-Secret"] = []string{mj}
		k, spelled, err := apiKey(req, s)
		if err != nil {
			return
		}
		if strings.ToLower(spelled) != k {
			t.Fatalf("key %q is not the canonical form of %q", k, spelled)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				t.Fatalf("not canonical: %q", k)
			}
		}
	})
}

// FuzzReadBulkString: the general path's GET reply parser never panics on what a broken or
// hostile peer sends, and reads every bulk string, nil and error reply as readReply does.
func FuzzReadBulkString(f *testing.F) {
	for _, seed := range []string{"$5\r\nhello\r\n", "$-1\r\n", "-ERR x\r\n", "-\r\n", "$0\r\n\r\n", "$3\r\nabcde", "$99999999999\r\n", "+OK\r\n", "$-2\r\n", "\r\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, found, err := readBulkString(bufio.NewReader(bytes.NewReader(data)))
		r, rerr := readReply(bufio.NewReader(bytes.NewReader(data)), 0)
		var replyErr *redisError
		switch {
		case rerr == nil && r.kind == '$':
			if err != nil || found == r.null || v != r.str {
				t.Fatalf("readBulkString %q %v %v; readReply %+v", v, found, err, r)
			}
		case rerr == nil && r.kind == '-':
			if !errors.As(err, &replyErr) || replyErr.msg != r.str {
				t.Fatalf("readBulkString %v; readReply %+v", err, r)
			}
		case err == nil:
			t.Fatalf("readBulkString %q %v; readReply %+v %v", v, found, r, rerr)
		}
	})
}

// FuzzReadReply: the RESP parser never panics on what a broken or hostile peer sends.
func FuzzReadReply(f *testing.F) {
	for _, seed := range []string{"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n:2\r\n", "*-1\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "$99999999999\r\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readReply(bufio.NewReader(strings.NewReader(string(data))), 0)
	})
}

// FuzzParseBindingEntry: the Redis entry decides requests without admind, and Redis is the
// network. Whatever the entry says, parsing never panics; an accepted one is well formed and
// can check any address.
func FuzzParseBindingEntry(f *testing.F) {
	for _, seed := range []string{"v1|active|single|127.0.0.2/32", "v1|banned|multiple|10.0.0.0/8,2001:db8::/64", "v1|active|all|",
		"v1|active|single|", "v1|active|single|1.2.3.4/33", "v1|active|single|::ffff:1.2.3.4/128", "v1||||", "v2|active|all|"} {
		f.Add(seed, "127.0.0.2")
	}
	f.Fuzz(func(t *testing.T, entry, addr string) {
		b, err := parseBindingEntry(entry)
		if err != nil {
			return
		}
		if !b.all && len(b.prefixes) == 0 {
			t.Fatalf("%q: accepted with no rule", entry)
		}
		for _, p := range b.prefixes {
			if !p.IsValid() {
				t.Fatalf("%q: invalid prefix %v", entry, p)
			}
		}
		if a, err := netip.ParseAddr(addr); err == nil {
			code := checkAddress(b, a)
			if b.banned && code != codeKeyBanned || !b.banned && b.all && code != "" {
				t.Fatalf("%q: checkAddress(%v) = %q", entry, a, code)
			}
		}
	})
}

// FuzzReportedField: whatever a request carries, the text reported to admind is valid UTF-8
// without control characters and within the bound admind checks, so admind never refuses it;
// and the fast path for text that needs no change changes nothing sanitizedField would.
func FuzzReportedField(f *testing.F) {
	f.Add("openai-python/1.0")
	f.Add("sk-abcd…wxyz")
	f.Add(strings.Repeat("\xff", 512))
	f.Add("/v1/\x00\u0085\u4e2d")
	f.Fuzz(func(t *testing.T, s string) {
		got := reportedField(s)
		if slow := sanitizedField(s); got != slow {
			t.Fatalf("reportedField(%q) = %q, sanitizedField %q", s, got, slow)
		}
		if !utf8.ValidString(got) || len(got) > maxReportedField {
			t.Fatalf("reportedField(%q) = %q: invalid or %d bytes", s, got, len(got))
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("reportedField(%q) = %q keeps control %U", s, got, r)
			}
		}
		var back string
		if b, _ := json.Marshal(got); json.Unmarshal(b, &back) != nil || back != got {
			t.Fatalf("JSON changes %q into %q", got, back)
		}
	})
}

// FuzzAuthorizationKeyAgrees: for a request whose only carrier is one Authorization line (or
// none), apiKey's short reading (authorizationKey) gives exactly what reading every carrier
// gives, on every path.
func FuzzAuthorizationKeyAgrees(f *testing.F) {
	f.Add("/v1/chat/completions", "Bearer sk-abc-1", true)
	f.Add("/api/user/self", "Bearer x.y.z", true)
	f.Add("/api/mj/submit/imagine", "midjourney-proxy", true)
	f.Add("/pg/chat", "bearer  SK-ÄBC ", true)
	f.Add("/v1/models", "", false)
	noErr := func(format string, args ...interface{}) { f.Fatalf(format, args...) }
	s := &options{
		dashboardRoutes: parseRoutes("dashboardRoutes", newAPIDashboardRoutes, noErr),
		keyRoutes:       parseRoutes("keyRoutes", newAPIKeyRoutes, noErr),
		routeVerdicts:   newRouteVerdicts(),
	}
	f.Fuzz(func(t *testing.T, path, auth string, withAuth bool) {
		req := &http.Request{Method: "POST", Header: http.Header{}, URL: &neturl.URL{Path: path}}
		if withAuth {
			req.Header["Authorization"] = []string{auth}
		}
		k1, s1, err1 := authorizationKey(req, s)
		k2, s2, err2 := keyFromEveryCarrier(req, s)
		if k1 != k2 || s1 != s2 || err1 != err2 {
			t.Fatalf("authorizationKey (%q, %q, %v), every carrier (%q, %q, %v)", k1, s1, err1, k2, s2, err2)
		}
		k3, s3, err3 := apiKey(req, s)
		if k3 != k1 || s3 != s1 || err3 != err1 {
			t.Fatalf("apiKey (%q, %q, %v) did not take the short reading (%q, %q, %v)", k3, s3, err3, k1, s1, err1)
		}
	})
}
