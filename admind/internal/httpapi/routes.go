// Package httpapi is admind's HTTP surface. routes.go lists all of it.
package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// NewPublicHandler serves what may face the network: health, readiness, metrics and the
// admin API. Only /health and /admin/ are meant to be routed by Traefik.
func NewPublicHandler(d Deps) http.Handler {
	r := mux.NewRouter()
	r.Use(instrument(d), recoverPanics(d))
	r.Handle("/health", handleHealth()).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/ready", handleReady(d)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	// The console and the admin API answer only on the console's own Hosts: the token lives
	// in the page origin's storage, which must not be New API's (see onConsoleHost).
	const api = "/admin/api"
	admin := requireAdmin(d)
	console := onConsoleHost(d.ConsoleHosts)
	r.Handle(api+"/login", console(handleLogin(d))).Methods(http.MethodPost)
	r.Handle(api+"/logout", console(admin(sessionOnly(handleLogout(d))))).Methods(http.MethodPost)
	r.Handle(api+"/dashboard", console(admin(handleDashboard(d)))).Methods(http.MethodGet)
	r.Handle(api+"/bindings", console(admin(handleListBindings(d)))).Methods(http.MethodGet)
	r.Handle(api+"/bindings", console(admin(handleCreateBinding(d)))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/import", console(admin(handleImportBindings(d)))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/export", console(admin(handleExportBindings(d)))).Methods(http.MethodGet)
	r.Handle(api+"/bindings/unbind", console(admin(handleUnbind(d)))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/ip", console(admin(handleSetRule(d)))).Methods(http.MethodPut)
	r.Handle(api+"/bindings/ban", console(admin(handleBan(d)))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/unban", console(admin(handleUnban(d)))).Methods(http.MethodPost)
	r.Handle(api+"/bindings/note", console(admin(handleSetNote(d)))).Methods(http.MethodPut)
	r.Handle(api+"/logs", console(admin(handleListLogs(d)))).Methods(http.MethodGet)
	r.Handle(api+"/logs/export", console(admin(handleExportLogs(d)))).Methods(http.MethodGet)
	r.Handle(api+"/audit", console(admin(handleListAudit(d)))).Methods(http.MethodGet)
	r.Handle(api+"/audit/export", console(admin(handleExportAudit(d)))).Methods(http.MethodGet)
	r.Handle(api+"/settings", console(admin(handleGetSettings(d)))).Methods(http.MethodGet)
	r.Handle(api+"/settings", console(admin(handlePutSettings(d)))).Methods(http.MethodPut)
	r.Handle(api+"/alerts/test", console(admin(handleTestAlert(d)))).Methods(http.MethodPost)
	r.Handle(api+"/tokens", console(admin(sessionOnly(handleListTokens(d))))).Methods(http.MethodGet)
	r.Handle(api+"/tokens", console(admin(sessionOnly(handleCreateToken(d))))).Methods(http.MethodPost)
	r.Handle(api+"/tokens/revoke", console(admin(sessionOnly(handleRevokeToken(d))))).Methods(http.MethodPost)
	r.Handle(api+"/openapi.yaml", console(handleOpenAPI())).Methods(http.MethodGet, http.MethodHead)

	r.Handle("/admin/ui", console(http.RedirectHandler(ConsolePrefix, http.StatusMovedPermanently))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/", console(http.RedirectHandler(ConsolePrefix, http.StatusFound))).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(ConsolePrefix).Handler(console(handleConsole(d.Console))).Methods(http.MethodGet, http.MethodHead)

	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed()
	return r
}

// NewInternalHandler serves the plugin only, on a listener Traefik never routes publicly,
// behind the internal bearer token.
func NewInternalHandler(d Deps) http.Handler {
	r := mux.NewRouter()
	r.Use(instrument(d), recoverPanics(d))
	api := r.PathPrefix(contract.InternalPrefix).Subrouter()
	api.Use(requireInternalToken(d.InternalToken))
	api.Handle(contract.PathDecide, handleDecide(d)).Methods(http.MethodPost)
	api.Handle(contract.PathIntercepts, handleIntercept(d)).Methods(http.MethodPost)
	api.Handle(contract.PathConfirm, handleConfirm(d)).Methods(http.MethodPost)
	api.Handle(contract.PathRelease, handleRelease(d)).Methods(http.MethodPost)
	r.Handle("/health", handleHealth()).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed()
	return r
}

// recoverPanics answers 500 for a handler that panicked, instead of net/http's closing the
// connection: to the plugin a closed connection means "admind could not decide", which in
// failsafe open forwards the request, so a request that crashes a handler must get an answer
// (a refusal) instead.
func recoverPanics(d Deps) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					d.Log.Error("handler panicked", "route", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
					writeError(w, http.StatusInternalServerError, "internal_error", "internal error")
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// onConsoleHost answers 421 to a request whose Host is not one of hosts. A host listed
// without a port matches it on any port; one with a port, that port only. The console keeps
// the admin token in its origin's sessionStorage and the API accepts it from there: served on
// New API's origin, any script of New API's web app (or injected into it) could read it.
func onConsoleHost(hosts []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !hostListed(r.Host, hosts) {
				writeError(w, http.StatusMisdirectedRequest, "misdirected_request",
					"the admin console is not served on this host name; the operator lists its own in CONSOLE_HOSTS")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func hostListed(hostport string, hosts []string) bool {
	hostport = strings.ToLower(hostport)
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	for _, want := range hosts {
		if want == hostport || strings.Trim(want, "[]") == host {
			return true
		}
	}
	return false
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
