package plugin

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/plugin/identity"
)

// fakeRedis answers each command read from a connection with the next scripted reply.
// A reply of "" closes the connection instead (a reset mid-conversation).
func fakeRedis(t *testing.T, replies []string) (addr string, commands chan []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	commands = make(chan []string, 100)
	go func() {
		next := 0
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(conn)
			for {
				v, err := readReply(r, 0)
				if err != nil {
					conn.Close()
					break
				}
				var args []string
				for _, a := range v.array {
					args = append(args, a.str)
				}
				commands <- args
				if next >= len(replies) {
					conn.Close()
					return
				}
				reply := replies[next]
				next++
				if reply == "" {
					conn.Close()
					break
				}
				conn.Write([]byte(reply))
			}
		}
	}()
	return ln.Addr().String(), commands
}

func testRedisOptions(addr string) redisOptions {
	return redisOptions{addr: addr, timeout: 500 * time.Millisecond, retryInterval: time.Millisecond, poolSize: 2}
}

func TestRESPReplies(t *testing.T) {
	addr, _ := fakeRedis(t, []string{"$5\r\nhello\r\n", "$-1\r\n", "-ERR wrong type\r\n", ":42\r\n", "*2\r\n$1\r\na\r\n*-1\r\n", "+OK\r\n"})
	c := newRedisClient(testRedisOptions(addr))
	v, err := redisDo(c, "GET", "k")
	if err != nil || v.str != "hello" || v.null {
		t.Fatalf("bulk: %+v %v", v, err)
	}
	v, err = redisDo(c, "GET", "missing")
	if err != nil || !v.null {
		t.Fatalf("nil bulk: %+v %v", v, err)
	}
	_, err = redisDo(c, "GET", "k")
	if _, ok := err.(*redisError); !ok {
		t.Fatalf("error reply: got %v", err)
	}
	v, err = redisDo(c, "INCR", "n")
	if err != nil || v.num != 42 {
		t.Fatalf("integer: %+v %v", v, err)
	}
	v, err = redisDo(c, "X")
	if err != nil || len(v.array) != 2 || v.array[0].str != "a" || !v.array[1].null {
		t.Fatalf("array: %+v %v", v, err)
	}
	// The error reply above did not cost the connection: every command used one connection.
	if len(c.idle) != 1 {
		t.Fatalf("pool holds %d connections, want 1", len(c.idle))
	}
}

// redisBulk with a GET, the general path's GET, reads what redisDo reads, and keeps the
// connection after an error reply; a malformed reply costs the connection (and Redis, for retryInterval).
func TestRESPGetString(t *testing.T) {
	addr, commands := fakeRedis(t, []string{"$16\r\nv1|active|all|\r\n\r\n", "$-1\r\n", "-ERR wrong type\r\n", "$0\r\n\r\n", "$3\r\nabcde"})
	c := newRedisClient(testRedisOptions(addr))
	for _, tt := range []struct {
		value   string
		found   bool
		errKind string
	}{
		{value: "v1|active|all|\r\n", found: true},
		{},
		{errKind: "reply"},
		{value: "", found: true},
		{errKind: "protocol"},
	} {
		v, found, err := redisBulk(c, encodeCommand([]string{"GET", "sentinel:b:k"}))
		if cmd := <-commands; len(cmd) != 2 || cmd[0] != "GET" || cmd[1] != "sentinel:b:k" {
			t.Fatalf("sent %q", cmd)
		}
		switch _, isReply := err.(*redisError); {
		case tt.errKind == "reply" && !isReply, tt.errKind == "protocol" && err != errRedisProtocol, tt.errKind == "" && err != nil:
			t.Fatalf("want %q error, got %v", tt.errKind, err)
		}
		if v != tt.value || found != tt.found {
			t.Fatalf("got %q %v, want %q %v", v, found, tt.value, tt.found)
		}
		if tt.errKind != "protocol" && len(c.idle) != 1 {
			t.Fatalf("after %+v the pool holds %d connections, want 1", tt, len(c.idle))
		}
	}
	if len(c.idle) != 0 || c.downUntil.Load() == 0 {
		t.Fatalf("a malformed reply left %d pooled connections, down until %d", len(c.idle), c.downUntil.Load())
	}
}

// TestBreakerRestsThenClears: after a connection-level failure Redis is not tried for
// retryInterval, and then the breaker clears itself, so the request path is back to testing
// downUntil != 0 alone.
func TestBreakerRestsThenClears(t *testing.T) {
	o := testRedisOptions("127.0.0.1:1")
	o.retryInterval = 50 * time.Millisecond
	c := newRedisClient(o)
	c.markDown()
	if _, _, err := redisBulk(c, encodeCommand([]string{"GET", "sentinel:b:k"})); err != errRedisDown {
		t.Fatalf("within retryInterval: %v, want errRedisDown", err)
	}
	time.Sleep(60 * time.Millisecond)
	if resting(c) || c.downUntil.Load() != 0 {
		t.Fatalf("after retryInterval: resting %v, down until %d", resting(c), c.downUntil.Load())
	}
	if _, _, err := redisBulk(c, encodeCommand([]string{"GET", "sentinel:b:k"})); err == nil || err == errRedisDown || c.downUntil.Load() == 0 {
		t.Fatalf("a refused dial: %v, down until %d", err, c.downUntil.Load())
	}
	later := time.Now().Add(time.Hour).UnixNano()
	c.downUntil.Store(later)
	if !resting(c) || c.downUntil.Load() != later {
		t.Fatal("a failure recorded later does not keep Redis resting")
	}
}

func TestRESPAuthSelectAndPipeline(t *testing.T) {
	addr, cmds := fakeRedis(t, []string{"+OK\r\n", "+OK\r\n", "$1\r\nx\r\n", ":1\r\n"})
	o := testRedisOptions(addr)
	o.password, o.db = "s3cret", 3
	c := newRedisClient(o)
	replies, err := redisPipeline(c, [][]string{{"GET", "a"}, {"INCR", "b"}})
	if err != nil || len(replies) != 2 || replies[0].str != "x" || replies[1].num != 1 {
		t.Fatalf("pipeline: %+v %v", replies, err)
	}
	want := []string{"AUTH s3cret", "SELECT 3", "GET a", "INCR b"}
	for _, w := range want {
		got := strings.Join(<-cmds, " ")
		if got != w {
			t.Fatalf("command %q, want %q", got, w)
		}
	}
}

func TestRESPAuthRefusedHidesPassword(t *testing.T) {
	addr, _ := fakeRedis(t, []string{"-WRONGPASS invalid password s3cret\r\n"})
	o := testRedisOptions(addr)
	o.password = "s3cret"
	_, err := redisDo(newRedisClient(o), "GET", "a")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v", err)
	}
}

func TestRESPBrokenConnectionsNotPooled(t *testing.T) {
	tests := []struct {
		desc  string
		reply string
	}{
		{desc: "reset before reply", reply: ""},
		{desc: "reset mid bulk", reply: "$10\r\nabc"},
		{desc: "bad type byte", reply: "?what\r\n"},
		{desc: "bulk without CRLF", reply: "$3\r\nabcXY"},
		{desc: "oversized bulk", reply: "$99999999\r\n"},
		{desc: "line without CR", reply: "+OK\n"},
	}
	for _, tt := range tests {
		addr, _ := fakeRedis(t, []string{tt.reply})
		c := newRedisClient(testRedisOptions(addr))
		v, err := redisDo(c, "GET", "k")
		if err == nil {
			t.Errorf("%s: no error, got %+v", tt.desc, v)
		}
		if len(c.idle) != 0 {
			t.Errorf("%s: broken connection returned to the pool", tt.desc)
		}
	}
}

func TestRESPCircuitBreaker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: dial fails fast
	o := testRedisOptions(addr)
	o.retryInterval = time.Hour
	c := newRedisClient(o)
	if _, err := redisDo(c, "GET", "k"); err == nil || err == errRedisDown {
		t.Fatalf("first call: %v", err)
	}
	if _, err := redisDo(c, "GET", "k"); err != errRedisDown {
		t.Fatalf("second call should be skipped, got %v", err)
	}
}

func TestRESPDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			time.Sleep(2 * time.Second) // a hung Redis: accepts, never answers
			conn.Close()
		}
	}()
	o := testRedisOptions(ln.Addr().String())
	o.timeout = 100 * time.Millisecond
	start := time.Now()
	if _, err := redisDo(newRedisClient(o), "GET", "k"); err == nil {
		t.Fatal("hung server gave no error")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("call took %v despite a 100ms deadline", d)
	}
}

// bindingGet and limitProbe, built from pieces made once, send exactly what the general
// encoder sends for the same arguments, for the hashes identity.Hash makes (keyHashLen long)
// and for any other length.
func TestPrebuiltCommandsEncodeAsTheGeneralEncoder(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	hash, legacy := identity.Hash(secret, "abc"), identity.Hash(secret, "ABC")
	if len(hash) != keyHashLen {
		t.Fatalf("identity.Hash gives %d characters, keyHashLen is %d", len(hash), keyHashLen)
	}
	for _, c := range []struct{ hash, legacy string }{{hash, ""}, {hash, legacy}, {"0123456789abcdef0", ""}, {hash, "0123456789abcdef0"}} {
		if got, want := bindingGet(c.hash), encodeCommand([]string{"GET", redisBindingKey(c.hash)}); got != want {
			t.Errorf("bindingGet(%q) = %q, want %q", c.hash, got, want)
		}
		want := []string{"EVAL", limitProbeScript, "4", redisBindingKey(c.hash), redisClaimKey(c.hash), boundCompleteKey, boundSetKey, c.hash[:16]}
		if c.legacy != "" {
			want = append(want, c.legacy[:16])
		}
		if got := limitProbe(c.hash, c.legacy); got != encodeCommand(want) {
			t.Errorf("limitProbe(%q, %q) = %q, want %q", c.hash, c.legacy, got, encodeCommand(want))
		}
	}
}
