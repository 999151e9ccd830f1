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

	"github.com/key-ip-sentinel/sentinel/admind/internal/alerts"
	"github.com/key-ip-sentinel/sentinel/admind/internal/archive"
	"github.com/key-ip-sentinel/sentinel/admind/internal/auth"
	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/cache"
	"github.com/key-ip-sentinel/sentinel/admind/internal/config"
	"github.com/key-ip-sentinel/sentinel/admind/internal/httpapi"
	"github.com/key-ip-sentinel/sentinel/admind/internal/intercepts"
	"github.com/key-ip-sentinel/sentinel/admind/internal/lastuse"
	"github.com/key-ip-sentinel/sentinel/admind/internal/metrics"
	"github.com/key-ip-sentinel/sentinel/admind/internal/netguard"
	"github.com/key-ip-sentinel/sentinel/admind/internal/settings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/store"
	"github.com/key-ip-sentinel/sentinel/web"
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
	redis.SetLogger(redisLogger{log})

	m := metrics.New()
	db, err := openStore(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer db.Close()

	rdb := newRedis(cfg)
	defer func() { _ = rdb.Close() }()
	rdb.AddHook(m.RedisHook())
	rcache := cache.New(rdb)

	live := &settings.Service{Store: db, Publisher: rcache, Defaults: cfg.Settings(), Log: log,
		AllowInternalWebhook: cfg.AlertWebhookAllowPrivate}
	if err := live.Refresh(ctx); err != nil {
		// Not fatal: the environment's values hold until PostgreSQL and Redis answer.
		log.Warn("runtime settings not loaded yet", "err", err)
	}
	decider := &bindings.Service{
		Store: db, Cache: rcache, Claims: rcache, Bound: rcache, Log: log,
		ClaimLimits: func() bindings.ClaimLimit {
			s := live.Current()
			return bindings.ClaimLimit{Limit: s.ClaimLimit, Window: time.Duration(s.ClaimWindowSeconds) * time.Second,
				PrefixV4: s.ClaimPrefixV4, PrefixV6: s.ClaimPrefixV6}
		},
		ObserveClaim: func(outcome string) {
			m.Claims.WithLabelValues(outcome).Inc()
			if outcome == "confirmed" {
				m.BindingsCreated.Inc()
			}
		},
		BindPrefixes: func() (int, int) {
			s := live.Current()
			return s.BindPrefixV4, s.BindPrefixV6
		},
		FirstUseLearning: func(now time.Time) (bindings.LearnRule, bool) {
			s := live.Current()
			return bindings.LearnRule{Slots: s.LearningSlots, Until: now.Add(time.Duration(s.LearningWindowSeconds) * time.Second)},
				s.FirstUseRule == string(bindings.ModeLearning)
		},
		RedisEntryTTL: cfg.RedisEntryTTL, FillTimeout: 200 * time.Millisecond, Now: time.Now,
		Observe: func(d bindings.Decision) {
			outcome := d.Reason
			if d.Allow {
				outcome = "allowed"
			}
			m.Decisions.WithLabelValues(outcome).Inc()
		},
	}
	admin := &bindings.Admin{Store: db, Cache: rcache, Bound: rcache, Log: log, RedisEntryTTL: cfg.RedisEntryTTL, Now: time.Now}

	notifier := &alerts.Notifier{
		Settings: live.Current, Secret: []byte(cfg.AlertWebhookSecret), Client: netguard.Client(10*time.Second, cfg.AlertWebhookAllowPrivate),
		Mail:          &alerts.Mailer{Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, AllowInternal: cfg.AlertWebhookAllowPrivate},
		AllowInternal: cfg.AlertWebhookAllowPrivate, Log: log,
		Outcome:     func(o string) { m.WebhookDeliveries.WithLabelValues(o).Inc() },
		MaxAttempts: 6, BaseDelay: time.Second, MaxDelay: time.Minute, Now: time.Now,
	}
	notifier.Init(1000)
	if cfg.AlertWebhookSecret == "" {
		log.Warn("ALERT_WEBHOOK_SECRET is not set: alert webhooks are sent unsigned")
	}
	evaluator := &alerts.Evaluator{
		Redis: rdb, Settings: live.Current, Binding: db.BindingByHash, Notify: notifier.Enqueue, Now: time.Now, Log: log,
		Ban: func(ctx context.Context, id int64) (bindings.Binding, error) {
			c, err := admin.Ban(ctx, bindings.SystemActor, id)
			return c.After, err
		},
	}
	evaluator.Init(10000)
	decider.KeyPresented = evaluator.SubmitPresented
	decider.ClaimBlocked = evaluator.ClaimBlocked
	db.OnInterceptsWritten = func(ctx context.Context, list []bindings.Intercept) {
		for _, ic := range list {
			m.Intercepts.WithLabelValues(ic.Outcome).Inc() // the column's CHECK admits only the two outcomes
		}
		evaluator.Submit(list)
	}
	deps := httpapi.Deps{
		Log: log, Metrics: m, Decider: decider, Intercepts: db, InternalToken: cfg.InternalToken,
		PluginCacheLimit: 60 * time.Second,
		Ready: func(ctx context.Context) error {
			return errors.Join(db.Ping(ctx), rcache.Ping(ctx))
		},
		Auth: &auth.Authenticator{
			Username: cfg.AdminUsername, Password: cfg.AdminPassword, JWTSecret: []byte(cfg.AdminJWTSecret),
			TokenTTL: cfg.AdminTokenTTL, Lockout: auth.DefaultLockout, Redis: rdb, Now: time.Now,
			OnFailure: func(reason string) { m.LoginFailures.WithLabelValues(reason).Inc() },
		},
		APITokens: &auth.APITokens{Store: db, Now: time.Now},
		Admin:     admin, Settings: live, Queries: db, AllowedCounts: rcache.AllowedCounts, TestAlert: notifier.Test,
		HMACSecret: []byte(cfg.HMACSecret), TrustedProxies: cfg.AdminTrustedProxies, ConsoleHosts: cfg.ConsoleHosts, Now: time.Now,
		Console: web.Dist(),
	}

	hostname, _ := os.Hostname()
	consumer := &intercepts.Consumer{
		RDB: rdb, Store: db, Log: log, Name: hostname + "-" + strconv.Itoa(os.Getpid()),
		Batch: 500, Block: time.Second, MinIdle: time.Minute, Interval: time.Second,
		OnFailsafe:     evaluator.Failsafe,
		OnRejected:     func(n int64) { m.PluginRejected.Add(float64(n)) },
		OnHiddenClient: func(n int64) { m.HiddenClients.Add(float64(n)) },
		OnLimited:      func(n int64) { m.Claims.WithLabelValues("limited").Add(float64(n)) },
		BadRow:         store.RefusedByServer,
		OnDropped:      func(n int) { m.EventsDropped.Add(float64(n)) },
	}
	syncer := &lastuse.Syncer{Redis: rdb, Store: db, Name: consumer.Name}
	archiver := &archive.Archiver{
		Store: db, SyncLastUse: syncer.Sync, DropCached: admin.DropCached, Settings: live.Current, Now: time.Now, Log: log,
		Archived: func(n int) { m.BindingsArchived.Add(float64(n)) },
	}
	pruner := &archive.LogPruner{
		Store: db, Settings: live.Current, Now: time.Now, Log: log,
		Deleted: func(n int64) { m.InterceptsDeleted.Add(float64(n)) },
	}

	servers := []*http.Server{
		// The public listener reads headers up to net/http's default 1 MiB so that an oversized
		// token gets the admin API's uniform 401 (auth refuses long tokens unparsed), not a 431.
		newServer(net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.AppPort)), httpapi.NewPublicHandler(deps), 1<<20, log),
		newServer(net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.InternalPort)), httpapi.NewInternalHandler(deps), 64<<10, log),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	// Every listener is bound before any serves: once /health answers on the public port, the
	// internal one accepts decides too (a unit test that decided right after /health met a
	// refused connection when the public server was served first).
	listeners := make([]net.Listener, len(servers))
	for i, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			for _, bound := range listeners[:i] {
				_ = bound.Close()
			}
			return fmt.Errorf("listen %s: %w", srv.Addr, err)
		}
		listeners[i] = ln
	}
	for i, srv := range servers {
		log.Info("listening", "addr", listeners[i].Addr().String())
		wg.Add(1)
		go func(srv *http.Server, ln net.Listener) {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(srv, listeners[i])
	}
	for _, worker := range []func(context.Context){
		consumer.Run,
		func(ctx context.Context) {
			every(ctx, settings.RefreshInterval, func(ctx context.Context) {
				if err := live.Refresh(ctx); err != nil && ctx.Err() == nil {
					log.Warn("settings refresh failed", "err", err)
				}
			})
		},
		notifier.Run,
		evaluator.Run,
		func(ctx context.Context) { every(ctx, settings.RefreshInterval, admin.RetryInvalidations) },
		func(ctx context.Context) {
			// Rebuilt at start (bindings written to PostgreSQL by other means get in), then kept.
			keep := func(how func(context.Context, func(context.Context, func(string) error) error) (bool, error)) func(context.Context) {
				return func(ctx context.Context) {
					start := time.Now()
					rebuilt, err := how(ctx, db.EachKeyHash)
					switch {
					case err != nil && ctx.Err() == nil:
						log.Warn("bound set not kept; the plugin asks admind for every source over its claim limit meanwhile", "err", err)
					case rebuilt:
						log.Info("bound set rebuilt from PostgreSQL", "took_ms", time.Since(start).Milliseconds())
					}
				}
			}
			keep(rcache.RebuildBound)(ctx)
			every(ctx, boundKeepInterval, keep(rcache.KeepBound))
		},
		func(ctx context.Context) {
			every(ctx, lastUseSyncInterval, func(ctx context.Context) {
				if _, err := syncer.Sync(ctx); err != nil && ctx.Err() == nil {
					log.Warn("last-use sync failed", "err", err)
				}
			})
		},
		func(ctx context.Context) {
			every(ctx, cfg.ArchiveInterval, func(ctx context.Context) {
				if _, _, err := archiver.RunOnce(ctx); err != nil && ctx.Err() == nil {
					log.Warn("archive run failed", "err", err)
				}
				if _, err := pruner.RunOnce(ctx); err != nil && ctx.Err() == nil {
					log.Warn("intercept log retention run failed", "err", err)
				}
			})
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(ctx)
		}()
	}

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
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, m *metrics.Metrics) (*store.Store, error) {
	var db *store.Store
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		maxConns := int32(cfg.DBMaxConns) //nolint:gosec // G115: config.Load bounds DB_MAX_CONNS to 1-1000
		minConns := int32(cfg.DBMinConns) //nolint:gosec // G115: config.Load bounds DB_MIN_CONNS to 0-DB_MAX_CONNS
		db, err = store.Open(ctx, cfg.DatabaseURL, store.Options{MaxConns: maxConns, MinConns: minConns, Tracer: m.PGTracer()})
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
	m.WatchPool(func() metrics.PoolStats {
		st := db.PoolStat()
		return metrics.PoolStats{MaxConns: st.MaxConns(), AcquiredConns: st.AcquiredConns(), EmptyAcquires: st.EmptyAcquireCount()}
	})
	return db, nil
}

// redisLogger sends go-redis's own messages (pool dial failures) to our structured log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis client", "detail", fmt.Sprintf(format, v...))
}

// newRedis connects to REDIS_ADDR, or through REDIS_SENTINELS to the current primary (the
// client follows failovers).
func newRedis(cfg config.Config) *redis.Client {
	// Callers bound their own Redis work (a decide must not wait a second on a hung Redis to
	// refresh a cache entry): ContextTimeoutEnabled.
	if len(cfg.RedisSentinels) > 0 {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.RedisMasterName, SentinelAddrs: cfg.RedisSentinels, Password: cfg.RedisPassword, DB: cfg.RedisDB,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, ContextTimeoutEnabled: true,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, ContextTimeoutEnabled: true,
	})
}

// lastUseSyncInterval is how often plugin-reported last use reaches PostgreSQL (the archive
// interval is ARCHIVE_INTERVAL).
const lastUseSyncInterval = 5 * time.Second

// every calls fn every interval until ctx ends.
// boundKeepInterval: how often the bound set (cache/bound.go) is checked, and rebuilt when
// its marker is gone or an add failed; also how long a failed add can go unnoticed by a
// rebuild.
const boundKeepInterval = 5 * time.Second

func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

func newServer(addr string, h http.Handler, maxHeaderBytes int, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
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
