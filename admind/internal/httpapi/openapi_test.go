package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"

	"github.com/key-ip-sentinel/sentinel/admind/internal/metrics"
)

// TestOpenAPIMatchesRoutes holds openapi.yaml to routes.go both ways: every admin API route is
// documented with its methods, and every documented operation is a route. (HEAD, which mux
// serves beside GET for a few routes, is left out on both sides.) The shapes of requests and
// answers are checked in admind's handler tests (admind/openapi_test.go).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	documented := operations(doc)
	routed := adminRoutes(t)
	for _, op := range routed {
		if !slices.Contains(documented, op) {
			t.Errorf("route %s is not in openapi.yaml", op)
		}
	}
	for _, op := range documented {
		if !slices.Contains(routed, op) {
			t.Errorf("openapi.yaml documents %s, which routes.go does not serve", op)
		}
	}
	if len(routed) < 20 {
		t.Fatalf("found only %d admin API routes: %v", len(routed), routed)
	}
}

// TestOpenAPIServed: admind serves the document on the console's hosts, without a token.
func TestOpenAPIServed(t *testing.T) {
	h := NewPublicHandler(Deps{Metrics: metrics.New(), ConsoleHosts: []string{"localhost"}, Console: fstest.MapFS{}})
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, httptest.NewRequest(http.MethodGet, "http://localhost/admin/api/openapi.yaml", nil))
	if rw.Code != http.StatusOK || !strings.HasPrefix(rw.Body.String(), "openapi: 3.") || rw.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("%d %q %.40q", rw.Code, rw.Header().Get("Content-Type"), rw.Body.String())
	}
}

// operations lists "METHOD /path" for every operation in doc, the path under /admin/api.
func operations(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if method != http.MethodHead {
				out = append(out, method+" /admin/api"+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// adminRoutes lists "METHOD /path" for every route NewPublicHandler serves under /admin/api.
func adminRoutes(t *testing.T) []string {
	h := NewPublicHandler(Deps{Metrics: metrics.New(), Console: fstest.MapFS{}})
	var out []string
	err := h.(*mux.Router).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil || !strings.HasPrefix(path, "/admin/api/") {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s has no methods", path)
		}
		for _, m := range methods {
			if m != http.MethodHead {
				out = append(out, m+" "+path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
