package testenv

import (
	"errors"
	"net"
	"os/exec"
	"testing"
	"time"
)

// A redis-server whose port was taken after it was picked says so at once, so ownRedis can
// pick another port instead of failing the test after the PING deadline.
func TestRedisStartSaysPortTaken(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := &RedisServer{dir: t.TempDir(), port: ln.Addr().(*net.TCPAddr).Port}
	r.Addr = ln.Addr().String()
	start := time.Now()
	err = r.Start()
	r.Kill()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("Start on a taken port: %v, want errPortTaken", err)
	}
	t.Logf("told in %v", time.Since(start))
}
