// Package metrics is admind's Prometheus instrumentation. Labels never carry a key, a hint
// or an address: only outcomes, routes and dependency names.
package metrics

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

// Metrics are admind's collectors on their own registry.
type Metrics struct {
	Registry          *prometheus.Registry
	Decisions         *prometheus.CounterVec // outcome: allowed | ip_not_allowed | key_banned | error
	BindingsCreated   prometheus.Counter
	BindingsArchived  prometheus.Counter
	Intercepts        *prometheus.CounterVec // intercept rows written, by outcome (refused, forwarded)
	EventsDropped     prometheus.Counter     // sentinel:events entries dropped as malformed or unstorable
	InterceptsDeleted prometheus.Counter     // intercept rows deleted past log_retention_days
	PluginRejected    prometheus.Counter     // decide requests the plugin reports admind refused
	HiddenClients     prometheus.Counter     // keyed requests the plugin refused from a relay's address
	Claims            *prometheus.CounterVec // first-use claims, by outcome (bindings/claims.go)
	LoginFailures     *prometheus.CounterVec // reason: bad_credentials | locked | unavailable
	WebhookDeliveries *prometheus.CounterVec // outcome: delivered | retried | failed | dropped
	DependencyErrors  *prometheus.CounterVec // dependency: postgres | redis
	RequestDuration   *prometheus.HistogramVec
}

// New registers every collector, plus the Go runtime and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_decisions_total", Help: "Decisions admind made for the plugin, by outcome.",
		}, []string{"outcome"}),
		BindingsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_bindings_created_total", Help: "Keys bound on first use.",
		}),
		BindingsArchived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_bindings_archived_total", Help: "Bindings moved to archived_bindings after ARCHIVE_DAYS unused.",
		}),
		Intercepts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_intercepts_total", Help: "Intercepted requests written to intercept_logs, by outcome: refused, or forwarded (monitor mode).",
		}, []string{"outcome"}),
		InterceptsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_intercepts_deleted_total", Help: "Intercept rows deleted past log_retention_days.",
		}),
		EventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_events_dropped_total", Help: "Stream entries dropped as malformed or refused by PostgreSQL.",
		}),
		PluginRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_plugin_decides_rejected_total", Help: "Decide requests the plugin reports admind refused (a bug or an attack).",
		}),
		HiddenClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentinel_hidden_client_requests_total", Help: "Keyed requests the plugin refused because they came from a relay's address (a network gateway, a trusted proxy that named no client), never bound.",
		}),
		Claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_claims_total", Help: "First-use claims by outcome: claimed, joined (the claimant again), contended (another address, refused), limited (the source over its limit of new claims, 429; with those the plugin answered itself, plugin/limits.go), blocked (the source refused new claims after presenting too many keys, 429), confirmed (bound), released (New API refused or never answered), lost.",
		}, []string{"outcome"}),
		LoginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_admin_login_failures_total", Help: "Refused admin logins, by reason.",
		}, []string{"reason"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_webhook_deliveries_total", Help: "Alert webhook delivery attempts, by outcome.",
		}, []string{"outcome"}),
		DependencyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentinel_dependency_errors_total", Help: "Failed PostgreSQL queries and Redis commands.",
		}, []string{"dependency"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sentinel_http_request_duration_seconds", Help: "admind HTTP request latency, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "code"}),
	}
	r.MustRegister(m.Decisions, m.BindingsCreated, m.BindingsArchived, m.Intercepts, m.InterceptsDeleted, m.EventsDropped, m.PluginRejected, m.HiddenClients, m.Claims, m.LoginFailures, m.WebhookDeliveries,
		m.DependencyErrors, m.RequestDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"allowed", "ip_not_allowed", "key_banned", "claim_rate_limited", "error"} {
		m.Decisions.WithLabelValues(o)
	}
	for _, o := range []string{"delivered", "retried", "failed", "dropped"} {
		m.WebhookDeliveries.WithLabelValues(o)
	}
	for _, o := range []string{bindings.OutcomeRefused, bindings.OutcomeForwarded} {
		m.Intercepts.WithLabelValues(o)
	}
	for _, d := range []string{"postgres", "redis"} {
		m.DependencyErrors.WithLabelValues(d)
	}
	for _, o := range []string{"claimed", "joined", "contended", "limited", "blocked", "confirmed", "released", "lost"} {
		m.Claims.WithLabelValues(o)
	}
	return m
}

// PoolStats is what WatchPool reads from the PostgreSQL pool (pgxpool.Stat).
type PoolStats struct {
	MaxConns, AcquiredConns int32
	EmptyAcquires           int64 // acquisitions that had to wait because every connection was busy
}

// WatchPool exports the PostgreSQL pool's size, use and waits, read at each scrape: a rising
// sentinel_pg_pool_empty_acquires_total means requests queued for a connection.
func (m *Metrics) WatchPool(stat func() PoolStats) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_pg_pool_max_conns", Help: "PostgreSQL pool size."},
			func() float64 { return float64(stat().MaxConns) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sentinel_pg_pool_acquired_conns", Help: "PostgreSQL connections in use."},
			func() float64 { return float64(stat().AcquiredConns) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sentinel_pg_pool_empty_acquires_total", Help: "PostgreSQL connection acquisitions that waited for a busy pool.",
		}, func() float64 { return float64(stat().EmptyAcquires) }),
	)
}

// PGTracer counts failed PostgreSQL statements (pgx's tracer hooks see every query and COPY).
func (m *Metrics) PGTracer() pgx.QueryTracer {
	return pgTracer{m.DependencyErrors.WithLabelValues("postgres")}
}

type pgTracer struct{ errs prometheus.Counter }

func (t pgTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (t pgTracer) TraceQueryEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	t.count(d.Err)
}

func (t pgTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return ctx
}

func (t pgTracer) TraceCopyFromEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	t.count(d.Err)
}

func (t pgTracer) count(err error) {
	// No rows is an answer, not a failure; a cancelled request is the client's doing.
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && !errors.Is(err, context.Canceled) {
		t.errs.Inc()
	}
}

// RedisHook counts failed Redis commands (redis.Nil, a missing key, is an answer).
func (m *Metrics) RedisHook() redis.Hook {
	return redisHook{m.DependencyErrors.WithLabelValues("redis")}
}

type redisHook struct{ errs prometheus.Counter }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.count(err)
		return err
	}
}

func (h redisHook) count(err error) {
	if err != nil && !errors.Is(err, redis.Nil) && !errors.Is(err, context.Canceled) {
		h.errs.Inc()
	}
}
