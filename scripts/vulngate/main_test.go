package main

import (
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	stream := `{"config":{"protocol_version":"v1.0.0"}}
{"finding":{"osv":"GO-2026-0001","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"}]}}
{"finding":{"osv":"GO-2026-0002","fixed_version":"v1.2.3","trace":[{"module":"example.com/lib","version":"v1.2.2"}]}}
`
	var out strings.Builder
	failed, err := gate(strings.NewReader(stream), &out)
	if err != nil || failed || !strings.Contains(out.String(), "GO-2026-0001") || strings.Contains(out.String(), "GO-2026-0002") {
		t.Fatalf("stdlib and uncalled only: failed=%v err=%v\n%s", failed, err, out.String())
	}
	stream += `{"finding":{"osv":"GO-2026-0003","fixed_version":"v1.2.3","trace":[{"module":"example.com/lib","version":"v1.2.2","package":"example.com/lib/x","function":"Parse"}]}}`
	out.Reset()
	if failed, err := gate(strings.NewReader(stream), &out); err != nil || !failed || !strings.Contains(out.String(), "FAIL GO-2026-0003") {
		t.Fatalf("called in a module: failed=%v err=%v\n%s", failed, err, out.String())
	}
}
