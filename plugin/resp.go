package plugin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A small RESP2 client. go-redis and redigo do not run under Yaegi, so this is the one piece
// written by hand: pooled connections, deadlines on every round trip, AUTH and SELECT on
// dial, pipelining, and a connection that saw any I/O or protocol error is closed, never
// returned to the pool (its stream position is unknown).

const (
	maxBulkLen    = 1 << 20 // our values are small; anything larger is a protocol error
	maxArrayLen   = 1 << 16
	maxReplyDepth = 4
)

var (
	errRedisDown     = errors.New("redis: skipped after a recent failure")
	errRedisProtocol = errors.New("redis: protocol error")
)

// redisError is an error reply ("-ERR ..."): the connection is still usable.
type redisError struct{ msg string }

func (e *redisError) Error() string { return "redis: " + e.msg }

// respValue is one reply. kind is the RESP type byte: '+', '-', ':', '$', '*'.
type respValue struct {
	kind  byte
	str   string
	num   int64
	null  bool
	array []respValue
}

type redisOptions struct {
	addr          string   // the Redis, or "" when the Sentinels name it
	sentinels     []string // host:port of Redis Sentinels
	masterName    string
	password      string
	db            int
	timeout       time.Duration
	retryInterval time.Duration
	poolSize      int
}

// configured reports whether a Redis is configured at all (else admind decides every miss).
func (o redisOptions) configured() bool { return o.addr != "" || len(o.sentinels) > 0 }

// registryKey identifies the client (pool, breaker, background loop) every middleware with
// these options shares.
func (o redisOptions) registryKey() string {
	return o.addr + "|" + strings.Join(o.sentinels, ",") + "|" + o.masterName + "|" + strconv.Itoa(o.db) + "|" +
		fingerprint(o.password) + "|" + o.timeout.String() + "|" + o.retryInterval.String() + "|" + strconv.Itoa(o.poolSize)
}

type redisClient struct {
	opts redisOptions
	// idle connections, a mutex-guarded stack: under Yaegi v0.16.1 a channel used as a pool
	// (select with a receive case) handed one connection to two goroutines at once under
	// load (internal/yaegihost TestConcurrentRedisUnderYaegi).
	mu   sync.Mutex
	idle []*respConn
	// downUntil (unix nanos) is a small circuit breaker: after a connection-level failure
	// nobody waits on Redis again until it passes.
	downUntil atomic.Int64
	runtime   runtimeState
	usage     usage
	limited   limitedSources // sources over their claim limit (limits.go): shared like the limit
}

type respConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func newRedisClient(o redisOptions) *redisClient {
	return &redisClient{opts: o}
}

// redisDo runs one command.
func redisDo(c *redisClient, args ...string) (respValue, error) {
	replies, err := redisPipeline(c, [][]string{args})
	if err != nil {
		return respValue{}, err
	}
	if replies[0].kind == '-' {
		return replies[0], &redisError{msg: replies[0].str}
	}
	return replies[0], nil
}

// bindingGet is GET of hash's binding entry in RESP, for redisBulk. A key hash has
// keyHashLen characters, so all but the hash is built once: under Yaegi the general
// encoding's strconv call and concatenations cost a miss about 20 allocations more.
func bindingGet(hash string) string {
	if len(hash) != keyHashLen {
		return encodeCommand([]string{"GET", redisBindingKey(hash)}) // not a hash identity.Hash made
	}
	return bindingGetHead + hash + "\r\n"
}

var bindingGetHead = "*2\r\n" + bulk("GET") + "$" + strconv.Itoa(len(bindingKeyPrefix)+keyHashLen) + "\r\n" + bindingKeyPrefix

// redisBulk sends cmd, one command already in RESP (bindingGet, limitProbe), and reads its
// reply, a bulk string: the general path's one Redis round trip on a local cache miss. It is
// written out rather than run through redisPipeline and readReply: under Yaegi every
// interpreted step and standard-library call costs allocations, and this runs on every miss.
// found is false for a nil reply; an error reply is a *redisError.
func redisBulk(c *redisClient, cmd string) (value string, found bool, err error) {
	if c.downUntil.Load() != 0 {
		if resting(c) {
			return "", false, errRedisDown
		}
	}
	rc, err := takeConn(c)
	if err != nil {
		c.markDown()
		return "", false, err
	}
	err = rc.conn.SetDeadline(time.Now().Add(c.opts.timeout))
	if err == nil {
		rc.w.WriteString(cmd)
		if err = rc.w.Flush(); err != nil {
			err = writeFailure(err)
		}
	}
	if err == nil {
		value, found, err = readBulkString(rc.r)
	}
	if err != nil {
		if connectionFailed(c, rc, err) {
			return "", false, err
		}
	}
	keepConn(c, rc)
	return value, found, err
}

// resting says whether Redis failed less than retryInterval ago. Once that has passed it
// clears the breaker, so that the request path goes back to testing only downUntil != 0
// (one clock read fewer per miss, which under Yaegi is several allocations).
func resting(c *redisClient) bool {
	until := c.downUntil.Load()
	if time.Now().UnixNano() < until {
		return true
	}
	c.downUntil.CompareAndSwap(until, 0) // unless a new failure moved it meanwhile
	return false
}

// connectionFailed closes rc and marks Redis down, unless err is an error reply (*redisError):
// the server answered, and the connection is still good.
func connectionFailed(c *redisClient, rc *respConn, err error) bool {
	if _, isReply := err.(*redisError); isReply {
		return false
	}
	dropConn(c, rc)
	return true
}

// dropConn closes rc after a failure on it and marks Redis down: the server failed or was
// demoted, and the next request must not reuse the connection.
func dropConn(c *redisClient, rc *respConn) {
	_ = rc.conn.Close()
	c.markDown()
}

// readBulkString reads the reply to a GET: a bulk string, a nil reply (found false) or an
// error reply (*redisError). It is readReply's reading of those three written out, without
// readLine, readReply's switch or readBulkBody: under Yaegi a call allocates every slot of the
// function it enters (readBulkBody's three results cost ~17 allocations), and this runs on
// every local cache miss. FuzzReadBulkString holds the two readings to one.
func readBulkString(r *bufio.Reader) (string, bool, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return "", false, readFailure(err)
	}
	n := len(line) - 2 // the line without its CRLF
	if n < 1 || line[n] != '\r' {
		return "", false, errRedisProtocol
	}
	if line[0] != '$' {
		if line[0] == '-' {
			return "", false, &redisError{msg: string(line[1:n])}
		}
		return "", false, errRedisProtocol
	}
	size, err := strconv.Atoi(string(line[1:n]))
	if err != nil || size < -1 || size > maxBulkLen {
		return "", false, errRedisProtocol
	}
	if size == -1 {
		return "", false, nil
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", false, readFailure(err)
	}
	if buf[size] != '\r' || buf[size+1] != '\n' {
		return "", false, errRedisProtocol
	}
	return string(buf[:size]), true, nil
}

// redisPipeline sends cmds in one write and reads one reply per command. Error replies are
// returned as values of kind '-'; the error result is for connection-level failures.
func redisPipeline(c *redisClient, cmds [][]string) ([]respValue, error) {
	if c.downUntil.Load() != 0 {
		if resting(c) {
			return nil, errRedisDown
		}
	}
	rc, err := takeConn(c)
	if err != nil {
		c.markDown()
		return nil, err
	}
	replies, err := roundTrip(rc, cmds, c.opts.timeout)
	if err != nil {
		dropConn(c, rc)
		return nil, err
	}
	for _, r := range replies {
		if r.kind == '-' && strings.HasPrefix(r.str, "READONLY") {
			// The server was demoted in a failover: its replies stand (they are error
			// replies), but the next connection must go to the new primary.
			dropConn(c, rc)
			return replies, nil
		}
	}
	keepConn(c, rc)
	return replies, nil
}

// markDown skips Redis for retryInterval and closes the idle connections: they lead to the
// server that just failed (or to a demoted primary), and each would fail once more.
func (c *redisClient) markDown() {
	c.downUntil.Store(time.Now().Add(c.opts.retryInterval).UnixNano())
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, rc := range idle {
		_ = rc.conn.Close()
	}
}

// takeConn returns an idle connection, or dials one.
func takeConn(c *redisClient) (*respConn, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		rc := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return rc, nil
	}
	c.mu.Unlock()
	return c.dial()
}

// keepConn returns rc to the idle stack, or closes it when the stack is full.
func keepConn(c *redisClient, rc *respConn) {
	c.mu.Lock()
	if len(c.idle) < c.opts.poolSize {
		c.idle = append(c.idle, rc)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = rc.conn.Close()
}

func (c *redisClient) dial() (*respConn, error) {
	addr := c.opts.addr
	if len(c.opts.sentinels) > 0 {
		var err error
		if addr, err = c.askSentinels(); err != nil {
			return nil, err
		}
	}
	conn, err := net.DialTimeout("tcp", addr, c.opts.timeout)
	if err != nil {
		return nil, fmt.Errorf("redis: dial: %w", err)
	}
	rc := &respConn{conn: conn, r: bufio.NewReaderSize(conn, 4096), w: bufio.NewWriterSize(conn, 4096)}
	var setup [][]string
	if c.opts.password != "" {
		setup = append(setup, []string{"AUTH", c.opts.password})
	}
	if c.opts.db != 0 {
		setup = append(setup, []string{"SELECT", strconv.Itoa(c.opts.db)})
	}
	if len(c.opts.sentinels) > 0 {
		// A Sentinel's answer may lag a failover: only a primary will do.
		setup = append(setup, []string{"ROLE"})
	}
	if len(setup) == 0 {
		return rc, nil
	}
	replies, err := roundTrip(rc, setup, c.opts.timeout)
	if err == nil {
		for _, r := range replies {
			if r.kind == '-' {
				// The reply text may echo arguments; never let a password near an error.
				err = errors.New("redis: AUTH, SELECT or ROLE refused")
				break
			}
		}
	}
	if err == nil && len(c.opts.sentinels) > 0 {
		if role := replies[len(replies)-1]; len(role.array) == 0 || role.array[0].str != "master" {
			err = errors.New("redis: the server the Sentinels named is not the primary")
		}
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return rc, nil
}

// askSentinels returns the primary's address as the first Sentinel that answers names it.
func (c *redisClient) askSentinels() (string, error) {
	for _, addr := range c.opts.sentinels {
		conn, err := net.DialTimeout("tcp", addr, c.opts.timeout)
		if err != nil {
			continue
		}
		sc := &respConn{conn: conn, r: bufio.NewReaderSize(conn, 512), w: bufio.NewWriterSize(conn, 512)}
		replies, err := roundTrip(sc, [][]string{{"SENTINEL", "get-master-addr-by-name", c.opts.masterName}}, c.opts.timeout)
		_ = conn.Close()
		if err == nil && len(replies[0].array) == 2 && replies[0].array[0].str != "" && replies[0].array[1].str != "" {
			return net.JoinHostPort(replies[0].array[0].str, replies[0].array[1].str), nil
		}
	}
	return "", errors.New("redis: no Sentinel named the primary")
}

// roundTrip writes cmds on rc in one write and reads one reply per command.
func roundTrip(rc *respConn, cmds [][]string, timeout time.Duration) ([]respValue, error) {
	if err := rc.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	for _, args := range cmds {
		writeCommand(rc.w, args)
	}
	if err := rc.w.Flush(); err != nil {
		return nil, writeFailure(err)
	}
	replies := make([]respValue, len(cmds))
	for i := range replies {
		v, err := readReply(rc.r, 0)
		if err != nil {
			return nil, err
		}
		replies[i] = v
	}
	return replies, nil
}

// writeCommand writes the command with one call: under Yaegi every call of a standard-library
// method costs more than building the pieces. They are joined once, in compiled code: a
// usage flush sends thousands of arguments, and concatenating them one by one is quadratic
// (it outlasted redisTimeout, and each such flush took Redis off the plugin for a second).
func writeCommand(w *bufio.Writer, args []string) {
	w.WriteString(encodeCommand(args))
}

// encodeCommand is args as one RESP command.
func encodeCommand(args []string) string {
	parts := make([]string, 0, len(args)+1)
	parts = append(parts, "*"+strconv.Itoa(len(args))+"\r\n")
	for _, a := range args {
		parts = append(parts, bulk(a))
	}
	return strings.Join(parts, "")
}

// bulk is s as a RESP bulk string.
func bulk(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }

// readReply parses one RESP2 reply. Sizes and nesting are bounded, so a hostile or broken
// peer cannot make us allocate without limit.
func readReply(r *bufio.Reader, depth int) (respValue, error) {
	line, err := readLine(r)
	if err != nil {
		return respValue{}, err
	}
	if len(line) == 0 {
		return respValue{}, errRedisProtocol
	}
	v := respValue{kind: line[0]}
	body := line[1:]
	switch v.kind {
	case '+', '-':
		v.str = body
	case ':':
		v.num, err = strconv.ParseInt(body, 10, 64)
		if err != nil {
			return respValue{}, errRedisProtocol
		}
	case '$':
		v.str, v.null, err = readBulkBody(r, body)
		if err != nil {
			return respValue{}, err
		}
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxArrayLen || depth >= maxReplyDepth {
			return respValue{}, errRedisProtocol
		}
		if n == -1 {
			v.null = true
			return v, nil
		}
		v.array = make([]respValue, n)
		for i := 0; i < n; i++ {
			v.array[i], err = readReply(r, depth+1)
			if err != nil {
				return respValue{}, err
			}
		}
	default:
		return respValue{}, errRedisProtocol
	}
	return v, nil
}

// readBulkBody reads a bulk string's body after its "$<length>" line; length -1 is the nil
// reply (null).
func readBulkBody(r *bufio.Reader, length string) (s string, null bool, err error) {
	n, err := strconv.Atoi(length)
	if err != nil || n < -1 || n > maxBulkLen {
		return "", false, errRedisProtocol
	}
	if n == -1 {
		return "", true, nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", false, readFailure(err)
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return "", false, errRedisProtocol
	}
	return string(buf[:n]), false, nil
}

// writeFailure is the error for commands that could not be sent.
func writeFailure(err error) error { return fmt.Errorf("redis: write: %w", err) }

// readFailure is the error for a line or body that could not be read.
func readFailure(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return errRedisProtocol
	}
	return fmt.Errorf("redis: read: %w", err)
}

// readLine reads up to CRLF; lines longer than the reader's buffer are a protocol error.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if err != nil {
		return "", readFailure(err)
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return "", errRedisProtocol
	}
	return string(b[:len(b)-2]), nil
}
