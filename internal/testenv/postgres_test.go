package testenv

import (
	"errors"
	"net"
	"os"
	"testing"
)

// A PostgreSQL cluster whose port was taken after it was picked says so, so
// StartPostgresCluster can pick another port instead of failing the test.
func TestPostgresStartSaysPortTaken(t *testing.T) {
	bin, err := PGBinDir()
	if err != nil {
		t.Skip(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir, err := os.MkdirTemp("", "sentinel-pg-")
	if err != nil {
		t.Fatal(err)
	}
	defer StopPostgresCluster(bin, dir)
	port, err := StartPostgresCluster(bin, dir) // initdb, and a start on a port free now
	if err != nil {
		t.Fatal(err)
	}
	c := &PostgresCluster{bin: bin, dir: dir, Port: port}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	err = startCluster(bin, dir, ln.Addr().(*net.TCPAddr).Port)
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port: %v, want errPortTaken", err)
	}
	if err := c.Start(); err != nil { // the cluster itself is fine
		t.Fatal(err)
	}
}
