// Package httpapi is admind's HTTP surface. routes.go lists all of it.
package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewPublicHandler serves what may face the network: health, readiness, metrics and the
// admin API. Only /health and /admin/ are meant to be routed by Traefik.
func NewPublicHandler(d Deps) http.Handler {
	r := mux.NewRouter()
	r.Use(instrument(d))
	r.Handle("/health", handleHealth()).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/ready", handleReady(d)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	const api = "/admin/api"
	admin := requireAdmin(d)
	r.Handle(api+"/login", handleLogin(d)).Methods(http.MethodPost)
	r.Handle(api+"/logout", admin(handleLogout(d))).Methods(http.MethodPost)
	r.Handle(api+"/dashboard", admin(handleDashboard(d))).Methods(http.MethodGet)
	r.Handle(api+"/bindings", admin(handleListBindings(d))).Methods(http.MethodGet)
	r.Handle(api+"/bindings/unbind", admin(handleUnbind(d))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/ip", admin(handleSetRule(d))).Methods(http.MethodPut)
	r.Handle(api+"/bindings/ban", admin(handleBan(d))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/unban", admin(handleUnban(d))).Methods(http.MethodPost)
	r.Handle(api+"/logs", admin(handleListLogs(d))).Methods(http.MethodGet)
	r.Handle(api+"/logs/export", admin(handleExportLogs(d))).Methods(http.MethodGet)
	r.Handle(api+"/settings", admin(handleGetSettings(d))).Methods(http.MethodGet)
	r.Handle(api+"/settings", admin(handlePutSettings(d))).Methods(http.MethodPut)

	r.Handle("/admin/ui", http.RedirectHandler(ConsolePrefix, http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/", http.RedirectHandler(ConsolePrefix, http.StatusFound)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(ConsolePrefix).Handler(handleConsole(d.Console)).Methods(http.MethodGet, http.MethodHead)

	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed()
	return r
}

// NewInternalHandler serves the plugin only, on a listener Traefik never routes publicly,
// behind the internal bearer token.
func NewInternalHandler(d Deps) http.Handler {
	r := mux.NewRouter()
	r.Use(instrument(d))
	api := r.PathPrefix("/internal/v1").Subrouter()
	api.Use(requireInternalToken(d.InternalToken))
	api.Handle("/decide", handleDecide(d)).Methods(http.MethodPost)
	api.Handle("/intercepts", handleIntercept(d)).Methods(http.MethodPost)
	r.Handle("/health", handleHealth()).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed()
	return r
}

// instrument records each request's latency by route template, method and status. Every
// label comes from a fixed set, whatever the request says: an unmatched route is "unknown", a
// method outside metricMethods "other", so a client cannot grow /metrics.
func instrument(d Deps) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			route := "unknown"
			if cr := mux.CurrentRoute(r); cr != nil {
				if t, err := cr.GetPathTemplate(); err == nil {
					route = t
				}
			}
			method := "other"
			if metricMethods[r.Method] {
				method = r.Method
			}
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			start := time.Now()
			next.ServeHTTP(sw, r)
			code := "other"
			if sw.status >= 100 && sw.status <= 599 {
				code = strconv.Itoa(sw.status)
			}
			d.Metrics.RequestDuration.WithLabelValues(route, method, code).Observe(time.Since(start).Seconds())
		})
	}
}

var metricMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and write deadlines (CSV export).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
