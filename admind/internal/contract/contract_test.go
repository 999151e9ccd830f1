package contract

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"testing"
)

// fixture is testdata/contract.json, the golden fixture the plugin's tests read too
// (plugin/contract_test.go).
type fixture struct {
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
		Decide     string            `json:"decide"`
		Confirm    string            `json:"confirm"`
		Release    string            `json:"release"`
		Intercepts string            `json:"intercepts"`
		Request    json.RawMessage   `json:"request"`
		Responses  []json.RawMessage `json:"responses"`
	} `json:"internal_api"`
	Reasons map[string]string `json:"reasons"`
	Limits  struct {
		MaxEventField int `json:"max_event_field"`
		ClaimIDLength int `json:"claim_id_length"`
	} `json:"limits"`
}

// fixturePath is the golden fixture, from a package directory two levels under admind/.
const fixturePath = "../../../testdata/contract.json"

func load(t *testing.T) fixture {
	t.Helper()
	b, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// strict decodes raw into v refusing unknown fields, and encodes v again: equal to raw when
// admind's struct names exactly the contract's fields.
func roundTrip(t *testing.T, raw []byte, v interface{}) (again map[string]any, want map[string]any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &again)
	_ = json.Unmarshal(raw, &want)
	return again, want
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(list ...string) []string { sort.Strings(list); return list }

func TestRedisKeys(t *testing.T) {
	r := load(t).Redis
	got := []string{BindingKey(r.KeyHash), GenerationKey, SettingsKey, EventsStream, LastUseKey, AllowedCounterKey(r.Day),
		ClaimKey(r.KeyHash), BoundSetKey, BoundCompleteKey, BoundMember(r.KeyHash)}
	want := []string{r.BindingKey, r.GenerationKey, r.SettingsKey, r.EventsStream, r.LastUseKey, r.AllowedCounterKey,
		r.ClaimKey, r.BoundSetKey, r.BoundCompleteKey, r.BoundMember}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Redis keys: admind uses %q, the contract says %q", got, want)
	}
	if !ValidKeyHash(r.KeyHash) {
		t.Errorf("the contract's key hash is not valid to admind")
	}
}

func TestBindingEntries(t *testing.T) {
	for _, e := range load(t).BindingEntries {
		if got := BindingEntry(e.Status, e.Mode, e.CIDRs); got != e.Entry {
			t.Errorf("admind writes %q, the contract says %q", got, e.Entry)
		}
	}
}

func TestPluginSettings(t *testing.T) {
	s := load(t).Settings
	b, _ := json.Marshal(PluginSettings{FailsafeMode: s.FailsafeMode})
	if string(b) != s.JSON {
		t.Errorf("admind publishes %s, the contract says %s", b, s.JSON)
	}
}

func TestStreamFields(t *testing.T) {
	f := load(t)
	intercept := sorted(FieldKeyHash, FieldKeyHint, FieldIP, FieldReason, FieldForwarded, FieldMethod, FieldPath, FieldUserAgent, FieldAt)
	if got := keys(f.InterceptEvent); !reflect.DeepEqual(got, intercept) {
		t.Errorf("intercept event fields: the contract has %v, admind reads %v", got, intercept)
	}
	failsafe := sorted(FieldType, FieldOpen, FieldClosed, FieldRejected, FieldHidden, FieldLimited, FieldAt)
	if got := keys(f.FailsafeEvent); !reflect.DeepEqual(got, failsafe) {
		t.Errorf("failsafe event fields: the contract has %v, admind reads %v", got, failsafe)
	}
	if f.FailsafeEvent[FieldType] != EventTypeFailsafe {
		t.Errorf("failsafe event type %q, admind looks for %q", f.FailsafeEvent[FieldType], EventTypeFailsafe)
	}
}

func TestInternalAPI(t *testing.T) {
	a := load(t).InternalAPI
	got := []string{InternalPrefix + PathDecide, InternalPrefix + PathConfirm, InternalPrefix + PathRelease, InternalPrefix + PathIntercepts}
	want := []string{a.Decide, a.Confirm, a.Release, a.Intercepts}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("internal paths: admind serves %v, the contract says %v", got, want)
	}
	var ev Event
	if again, want := roundTrip(t, a.Request, &ev); !reflect.DeepEqual(again, want) {
		t.Errorf("request\n admind reads %v\n the contract says %v", again, want)
	}
	if _, err := ev.Check(true); err != nil {
		t.Errorf("admind refuses the contract's request: %v", err)
	}
	for _, raw := range a.Responses {
		var dr DecideResponse
		if again, want := roundTrip(t, raw, &dr); !reflect.DeepEqual(again, want) {
			t.Errorf("response\n admind writes %v\n the contract says %v", again, want)
		}
	}
}

func TestReasonsAndLimits(t *testing.T) {
	f := load(t)
	want := map[string]string{"ip_not_allowed": ReasonIPNotAllowed, "key_banned": ReasonKeyBanned, "claim_rate_limited": ReasonClaimLimited}
	if !reflect.DeepEqual(f.Reasons, want) {
		t.Errorf("reasons: admind has %v, the contract %v", want, f.Reasons)
	}
	if f.Limits.MaxEventField != MaxEventField || f.Limits.ClaimIDLength != ClaimIDLength {
		t.Errorf("limits: admind has %d/%d, the contract %+v", MaxEventField, ClaimIDLength, f.Limits)
	}
}
