package intercepts

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
)

// The plugin's stream entries as the golden fixture has them (testdata/contract.json; the
// plugin's tests check it writes exactly these) are read in full.
func TestReadsTheContractsEvents(t *testing.T) {
	b, err := os.ReadFile("../../../testdata/contract.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Intercept map[string]string `json:"intercept_event"`
		Failsafe  map[string]string `json:"failsafe_event"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	entry := func(m map[string]string) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	in, ok := parseEvent(entry(f.Intercept), time.UnixMilli(1764806400000))
	if !ok || in.KeyHash != f.Intercept["key_hash"] || in.KeyHint != f.Intercept["key_hint"] || in.IP.String() != f.Intercept["ip"] ||
		in.Reason != f.Intercept["reason"] || in.Method != f.Intercept["method"] || in.Path != f.Intercept["path"] ||
		in.UserAgent != f.Intercept["user_agent"] || in.At.UnixMilli() != 1764806400000 ||
		(in.Outcome == bindings.OutcomeForwarded) != (f.Intercept["forwarded"] == "true") {
		t.Errorf("intercept %v read as %+v, %v", f.Intercept, in, ok)
	}
	if got := parsePluginCounts(entry(f.Failsafe)); got != (pluginCounts{forwarded: 3, refused: 4, rejected: 1, hidden: 2, limited: 5}) {
		t.Errorf("failsafe counts %v read as %+v", f.Failsafe, got)
	}
}
