package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/key-ip-sentinel/sentinel/admind/internal/httpapi"
)

// The admin API's OpenAPI document (httpapi/openapi.yaml) as the handler tests' referee: every
// admin API call a test makes through admindUnderTest.call is checked against it, the request
// when admind accepted it (a test may send a bad request on purpose), the answer always.

var openAPIRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	doc.Servers = openapi3.Servers{{URL: "http://sentinel.test/admin/api"}}
	return gorillamux.NewRouter(doc)
})

// checkOpenAPI validates one admin API exchange against the document.
func checkOpenAPI(t testing.TB, method, path, contentType string, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if !strings.HasPrefix(path, "/admin/api/") {
		return
	}
	router, err := openAPIRouter()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	u, _ := url.Parse("http://sentinel.test" + path)
	req, _ := http.NewRequest(method, u.String(), bytes.NewReader(reqBody))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return // a test of a route that does not exist
		}
		t.Errorf("%s %s answered %d but is not in openapi.yaml: %v", method, u.Path, resp.StatusCode, err)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	if resp.StatusCode/100 == 2 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s %s was accepted (%d) but does not match openapi.yaml: %v", method, u.Path, resp.StatusCode, err)
		}
	}
	respOpts := *opts
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		respOpts.ExcludeResponseBody = true // CSV and YAML bodies are strings by definition
	}
	in.Options = &respOpts
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody))}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s: the %d answer does not match openapi.yaml: %v\n%s", method, u.Path, resp.StatusCode, err, respBody)
	}
}
