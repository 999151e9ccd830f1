package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/cache"
	"github.com/key-ip-sentinel/sentinel/admind/internal/config"
	"github.com/key-ip-sentinel/sentinel/admind/internal/httpapi"
	"github.com/key-ip-sentinel/sentinel/admind/internal/intercepts"
	"github.com/key-ip-sentinel/sentinel/admind/internal/store"
)

// run starts admind and blocks until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, _ io.Writer, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "healthcheck" {
		return healthcheck(ctx, getenv)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting admind", "config", cfg)

	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()

	rdb := redis.NewClient(&redis.Options{
		Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	defer rdb.Close()
	rcache := cache.New(rdb)

	decider := &bindings.Service{
		Store: db, Cache: rcache, Log: log,
		BindPrefixV4: cfg.BindPrefixV4, BindPrefixV6: cfg.BindPrefixV6,
		CacheTTL: cfg.BindingCacheTTL, Now: time.Now,
	}
	deps := httpapi.Deps{
		Log: log, Decider: decider, Intercepts: db, InternalToken: cfg.InternalToken,
		CacheTTL: 60 * time.Second,
		Ready: func(ctx context.Context) error {
			return errors.Join(db.Ping(ctx), rcache.Ping(ctx))
		},
	}

	hostname, _ := os.Hostname()
	consumer := &intercepts.Consumer{
		RDB: rdb, Store: db, Log: log, Name: hostname + "-" + strconv.Itoa(os.Getpid()),
		Batch: 500, Block: time.Second, MinIdle: time.Minute, Interval: time.Second,
	}

	servers := []*http.Server{
		newServer(net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.AppPort)), httpapi.NewPublicHandler(deps), log),
		newServer(net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.InternalPort)), httpapi.NewInternalHandler(deps), log),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", srv.Addr, err)
		}
		log.Info("listening", "addr", ln.Addr().String())
		wg.Add(1)
		go func(srv *http.Server, ln net.Listener) {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(srv, ln)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		consumer.Run(ctx)
	}()

	select {
	case <-ctx.Done():
	case err = <-errc:
		log.Error("server failed", "err", err)
	}
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	log.Info("admind stopped")
	return err
}

// openStore connects to PostgreSQL (retrying briefly: in compose it may start after us) and
// applies the migrations.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*store.Store, error) {
	var db *store.Store
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err = store.Open(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns))
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		log.Warn("waiting for PostgreSQL", "err", err)
		time.Sleep(time.Second)
	}
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func newServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// healthcheck is `admind healthcheck`, for container health checks on images without a shell
// or curl: it asks the running admind's /health on APP_PORT.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	port := getenv("APP_PORT")
	if port == "" {
		port = "8080"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: status %d", resp.StatusCode)
	}
	return nil
}
