package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// contractFixture is testdata/contract.json, the golden fixture admind's tests read too.
type contractFixture struct {
	Redis struct {
		KeyHash           string `json:"key_hash"`
		BindingKey        string `json:"binding_key"`
		GenerationKey     string `json:"generation_key"`
		SettingsKey       string `json:"settings_key"`
		EventsStream      string `json:"events_stream"`
		LastUseKey        string `json:"last_use_key"`
		Day               string `json:"day"`
		AllowedCounterKey string `json:"allowed_counter_key"`
		ClaimKey          string `json:"claim_key"`
		BoundSetKey       string `json:"bound_set_key"`
		BoundCompleteKey  string `json:"bound_complete_key"`
		BoundMember       string `json:"bound_member"`
	} `json:"redis"`
	BindingEntries []struct {
		Entry  string   `json:"entry"`
		Status string   `json:"status"`
		Mode   string   `json:"mode"`
		CIDRs  []string `json:"cidrs"`
	} `json:"binding_entries"`
	Settings struct {
		JSON         string `json:"json"`
		FailsafeMode string `json:"failsafe_mode"`
	} `json:"settings"`
	InterceptEvent map[string]string `json:"intercept_event"`
	FailsafeEvent  map[string]string `json:"failsafe_event"`
	InternalAPI    struct {
		Decide     string                   `json:"decide"`
		Confirm    string                   `json:"confirm"`
		Release    string                   `json:"release"`
		Intercepts string                   `json:"intercepts"`
		Request    map[string]interface{}   `json:"request"`
		Responses  []map[string]interface{} `json:"responses"`
	} `json:"internal_api"`
	Reasons map[string]string `json:"reasons"`
	Limits  struct {
		MaxEventField int `json:"max_event_field"`
		ClaimIDLength int `json:"claim_id_length"`
	} `json:"limits"`
}

// loadContract reads the fixture from the repository root: from the package directory under
// go test, through GOPATH under the yaegi CLI (scripts/yaegi-test.sh links the repository
// there and runs from elsewhere).
func loadContract(t *testing.T) contractFixture {
	t.Helper()
	paths := []string{filepath.Join("..", "testdata", "contract.json")}
	if gp := os.Getenv("GOPATH"); gp != "" {
		paths = append(paths, filepath.Join(gp, "src", "github.com", "key-ip-sentinel", "sentinel", "testdata", "contract.json"))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var c contractFixture
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return c
	}
	t.Fatalf("testdata/contract.json not found (tried %v)", paths)
	return contractFixture{}
}

// asJSONObject is v encoded and decoded again, so it compares with the fixture's objects.
func asJSONObject(t *testing.T, v interface{}) map[string]interface{} {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func pairsToMap(t *testing.T, pairs []string) map[string]string {
	t.Helper()
	if len(pairs)%2 != 0 {
		t.Fatalf("odd field list %q", pairs)
	}
	out := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		out[pairs[i]] = pairs[i+1]
	}
	return out
}

func TestContractRedisKeys(t *testing.T) {
	c := loadContract(t).Redis
	got := []string{redisBindingKey(c.KeyHash), generationKey, settingsKey, eventsStream, lastUseKey, allowedStatsPrefix + c.Day,
		redisClaimKey(c.KeyHash), boundSetKey, boundCompleteKey, boundMember(c.KeyHash)}
	want := []string{c.BindingKey, c.GenerationKey, c.SettingsKey, c.EventsStream, c.LastUseKey, c.AllowedCounterKey,
		c.ClaimKey, c.BoundSetKey, c.BoundCompleteKey, c.BoundMember}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Redis key %d: the plugin uses %q, the contract says %q", i, got[i], want[i])
		}
	}
}

func TestContractBindingEntries(t *testing.T) {
	for _, e := range loadContract(t).BindingEntries {
		fromRedis, err := parseBindingEntry(e.Entry)
		if err != nil {
			t.Fatalf("%q: %v", e.Entry, err)
		}
		fromAdmind, err := bindingFromReply(&bindingReply{Status: e.Status, Mode: e.Mode, CIDRs: e.CIDRs})
		if err != nil {
			t.Fatalf("reply %+v: %v", e, err)
		}
		for _, b := range []*binding{fromRedis, fromAdmind} {
			var cidrs []string
			for _, p := range b.prefixes {
				cidrs = append(cidrs, p.String())
			}
			if b.banned != (e.Status == "banned") || b.all != (e.Mode == "all") || b.learning != (e.Mode == "learning") || len(cidrs) != len(e.CIDRs) ||
				(len(cidrs) > 0 && !reflect.DeepEqual(cidrs, e.CIDRs)) {
				t.Errorf("%q read as banned=%v all=%v %v", e.Entry, b.banned, b.all, cidrs)
			}
		}
	}
}

func TestContractSettings(t *testing.T) {
	c := loadContract(t).Settings
	rs := &runtimeState{}
	rs.applySettings(respValue{kind: '$', str: c.JSON})
	want := failsafeClosed
	if c.FailsafeMode == failsafeModeOpen {
		want = failsafeOpen
	}
	if rs.failsafe.Load() != want {
		t.Fatalf("settings %s read as failsafe %d", c.JSON, rs.failsafe.Load())
	}
}

func TestContractStreamEvents(t *testing.T) {
	c := loadContract(t)
	ie := c.InterceptEvent
	ev := decideRequest{KeyHash: ie["key_hash"], KeyHint: ie["key_hint"], IP: ie["ip"], Reason: ie["reason"],
		Forwarded: ie["forwarded"] == "true", Method: ie["method"], Path: ie["path"], UserAgent: ie["user_agent"]}
	if got := pairsToMap(t, interceptEvent(ev, ie["at"])); !reflect.DeepEqual(got, ie) {
		t.Errorf("intercept event\n the plugin writes %v\n the contract says %v", got, ie)
	}
	if got := pairsToMap(t, failsafeEvent(3, 4, 1, 2, 5, c.FailsafeEvent["at"])); !reflect.DeepEqual(got, c.FailsafeEvent) {
		t.Errorf("failsafe event\n the plugin writes %v\n the contract says %v", got, c.FailsafeEvent)
	}
}

func TestContractInternalAPI(t *testing.T) {
	c := loadContract(t).InternalAPI
	got := []string{pathDecide, pathConfirm, pathRelease, pathIntercepts}
	want := []string{c.Decide, c.Confirm, c.Release, c.Intercepts}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("internal paths: the plugin posts to %v, the contract says %v", got, want)
	}

	// The request: every field the contract names, and no other, survives the plugin's struct.
	b, _ := json.Marshal(c.Request)
	var dr decideRequest
	if err := json.Unmarshal(b, &dr); err != nil {
		t.Fatal(err)
	}
	if got := asJSONObject(t, dr); !reflect.DeepEqual(got, c.Request) {
		t.Errorf("decide request\n the plugin sends %v\n the contract says %v", got, c.Request)
	}

	// The answers: every field the contract names is read into the plugin's struct.
	for _, resp := range c.Responses {
		b, _ := json.Marshal(resp)
		var out decideResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		got := asJSONObject(t, out)
		for k, v := range resp {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("decide response field %q: the plugin reads %v, the contract says %v", k, got[k], v)
			}
		}
	}
}

func TestContractReasonsAndLimits(t *testing.T) {
	c := loadContract(t)
	for name, code := range map[string]string{"ip_not_allowed": codeIPNotAllowed, "key_banned": codeKeyBanned, "claim_rate_limited": codeClaimLimited} {
		if c.Reasons[name] != code {
			t.Errorf("reason %s: the plugin says %q, the contract %q", name, code, c.Reasons[name])
		}
	}
	if c.Limits.MaxEventField != maxReportedField || c.Limits.ClaimIDLength != claimLength {
		t.Errorf("limits: the plugin has %d/%d, the contract %+v", maxReportedField, claimLength, c.Limits)
	}
	if !validClaim(c.InternalAPI.Request["claim"].(string)) {
		t.Errorf("the contract's claim %v is not valid to the plugin", c.InternalAPI.Request["claim"])
	}
}
