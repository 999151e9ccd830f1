// Command admind is Key-IP Sentinel's daemon: it owns PostgreSQL, binds keys on first use,
// records intercepts and serves the plugin's internal API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "admind: %v\n", err)
		os.Exit(1)
	}
}
