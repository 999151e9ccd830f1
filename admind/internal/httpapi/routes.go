// Package httpapi is admind's HTTP surface. routes.go lists all of it.
package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// NewPublicHandler serves what may face the network: health and readiness.
func NewPublicHandler(d Deps) http.Handler {
	r := mux.NewRouter()
	r.Handle("/health", handleHealth()).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/ready", handleReady(d)).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed()
	return r
}

// NewInternalHandler serves the plugin only, on a listener Traefik never routes publicly,
// behind the internal bearer token.
func NewInternalHandler(d Deps) http.Handler {
	r := mux.NewRouter()
	api := r.PathPrefix("/internal/v1").Subrouter()
	api.Use(requireInternalToken(d.InternalToken))
	api.Handle("/decide", handleDecide(d)).Methods(http.MethodPost)
	api.Handle("/intercepts", handleIntercept(d)).Methods(http.MethodPost)
	r.Handle("/health", handleHealth()).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed()
	return r
}
