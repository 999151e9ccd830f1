//go:build linux

package testenv

import (
	"context"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on an OS thread that has entered the network namespace at path (a named
// one, /var/run/netns/NAME, or a container's, /proc/PID/ns/net). Sockets fn opens stay in
// that namespace after it returns, so a test can be a client (or a server) on a network it
// is not on. The thread is never unlocked: it ends with its goroutine, namespace and all,
// and the Go runtime starts no other thread from a locked one.
func InNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// NetnsDialer dials from inside the network namespace at path; for http.Transport.DialContext.
func NetnsDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNetns(path, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// NetnsListen opens a TCP listener inside the network namespace at path.
func NetnsListen(path, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}
