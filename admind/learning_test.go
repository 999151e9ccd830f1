package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// TestLearningRace: with first_use_rule "learning" and 3 slots, a first use binds one address
// and then, however many new addresses race for the key, exactly two more are learned; every
// other is refused and recorded, each learned address is in admin_audit under "system", and
// Redis holds the full rule as "multiple" for the plugin to decide alone.
func TestLearningRace(t *testing.T) {
	a := startAdmind(t, map[string]string{"FIRST_USE_RULE": "learning", "LEARNING_SLOTS": "3"})
	conn := a.db(t)
	rc := a.redis.Client(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const rounds, racers = 30, 50
	for round := 0; round < rounds; round++ {
		hash := hashKey("learning-race-" + strconv.Itoa(round))
		if d, st := a.decide(t, client, hash, "127.0.2.1"); st != 200 || !d.Allow || d.Binding.Mode != "learning" {
			t.Fatalf("round %d: first use %d %+v", round, st, d)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var learned []string
		refused := 0
		for i := 0; i < racers; i++ {
			ip := "127.0.3." + strconv.Itoa(i+1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, st := a.decide(t, client, hash, ip)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case st == 200 && d.Allow && !d.Provisional:
					learned = append(learned, ip)
				case st == 200 && d.Reason == "ip_not_allowed":
					refused++
				default:
					t.Errorf("round %d %s: status %d %+v", round, ip, st, d)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(learned) != 2 || refused != racers-2 {
			t.Fatalf("round %d: %d learned %v, %d refused", round, len(learned), learned, refused)
		}
		var cidrs []string
		var mode string
		if err := conn.QueryRow(context.Background(),
			`SELECT rule_mode, cidrs::text[] FROM token_bindings WHERE key_hash = $1`, hash).Scan(&mode, &cidrs); err != nil {
			t.Fatal(err)
		}
		want := []string{"127.0.2.1/32", learned[0] + "/32", learned[1] + "/32"}
		slices.Sort(cidrs)
		slices.Sort(want)
		if mode != "learning" || !slices.Equal(cidrs, want) {
			t.Fatalf("round %d: %s %v, want learning %v", round, mode, cidrs, want)
		}
		for _, ip := range append([]string{"127.0.2.1"}, learned...) {
			if d, _ := a.decide(t, client, hash, ip); !d.Allow {
				t.Fatalf("round %d: learned %s refused", round, ip)
			}
		}
		if n := count(t, conn, `SELECT count(*) FROM intercept_logs WHERE key_hash = $1`, hash); n != racers-2 {
			t.Fatalf("round %d: %d intercepts, want %d", round, n, racers-2)
		}
		if n := count(t, conn, `SELECT count(*) FROM admin_audit a JOIN token_bindings b ON a.target = 'binding:' || b.id
			WHERE b.key_hash = $1 AND a.actor = 'system' AND a.action = 'binding.learn'`, hash); n != 2 {
			t.Fatalf("round %d: %d binding.learn audit rows, want 2", round, n)
		}
		entry := rc.Get(context.Background(), contract.BindingKey(hash)).Val()
		if len(entry) < 20 || entry[:19] != "v1|active|multiple|" {
			t.Fatalf("round %d: Redis entry %q, want the full rule as multiple", round, entry)
		}
	}
}

// TestLearningRuleByAdmin: an admin sets a learning rule (slots and window, or the settings'
// defaults); the binding view shows its state; it learns within its window only, and a full
// or closed rule holds what it learned. Bad bounds are refused with the field named.
func TestLearningRuleByAdmin(t *testing.T) {
	a := startAdmind(t, map[string]string{"LEARNING_SLOTS": "4", "LEARNING_WINDOW_SECONDS": "600"})
	tok := a.login(t)
	client := &http.Client{}
	hash := hashKey("learning-admin-key")
	if d, _ := a.decide(t, client, hash, "127.0.4.1"); !d.Allow || d.Binding.Mode != "single" {
		t.Fatalf("first use: %+v", d)
	}
	id := bindingID(t, a, tok, hash)

	type view struct {
		Mode       string     `json:"mode"`
		CIDRs      []string   `json:"cidrs"`
		LearnSlots *int       `json:"learn_slots"`
		LearnUntil *time.Time `json:"learn_until"`
		SlotsLeft  *int       `json:"slots_left"`
	}
	setRule := func(body map[string]any) (int, view, []byte) {
		body["id"] = id
		st, raw := a.call(t, tok, http.MethodPut, "/admin/api/bindings/ip", body)
		var out struct {
			Binding view `json:"binding"`
		}
		_ = json.Unmarshal(raw, &out)
		return st, out.Binding, raw
	}

	st, raw := a.call(t, tok, http.MethodPut, "/admin/api/bindings/ip", map[string]any{"id": id, "mode": "single", "cidrs": []string{"127.0.4.1"}, "learn_slots": 2})
	wantError(t, st, raw, http.StatusBadRequest, "bad_request", "learning")
	st, _, raw = setRule(map[string]any{"mode": "learning", "cidrs": []string{"127.0.4.1", "127.0.4.2"}, "learn_slots": 1})
	wantError(t, st, raw, http.StatusBadRequest, "bad_request", "1 slots")
	st, _, raw = setRule(map[string]any{"mode": "learning", "cidrs": []string{"127.0.4.1"}, "learn_slots": 65})
	wantError(t, st, raw, http.StatusBadRequest, "bad_request", "learn_slots")
	st, _, raw = setRule(map[string]any{"mode": "learning", "cidrs": []string{"127.0.4.1"}, "learn_window_seconds": -1})
	wantError(t, st, raw, http.StatusBadRequest, "bad_request", "learn_window_seconds")

	// The settings' defaults: 4 slots, 600 s.
	before := time.Now()
	st, v, raw := setRule(map[string]any{"mode": "learning", "cidrs": []string{"127.0.4.1"}})
	if st != 200 || v.Mode != "learning" || *v.LearnSlots != 4 || *v.SlotsLeft != 3 ||
		v.LearnUntil.Before(before.Add(599*time.Second)) || v.LearnUntil.After(time.Now().Add(601*time.Second)) {
		t.Fatalf("learning rule with defaults: %d %s", st, raw)
	}
	if d, _ := a.decide(t, client, hash, "127.0.4.2"); !d.Allow {
		t.Fatalf("a new address within the window was refused: %+v", d)
	}

	// A one-second window: it closes, and the rule holds what it has.
	st, v, raw = setRule(map[string]any{"mode": "learning", "cidrs": []string{"127.0.4.1"}, "learn_slots": 5, "learn_window_seconds": 1})
	if st != 200 || *v.SlotsLeft != 4 {
		t.Fatalf("short window: %d %s", st, raw)
	}
	if d, _ := a.decide(t, client, hash, "127.0.4.3"); !d.Allow {
		t.Fatalf("127.0.4.3 within the window: %+v", d)
	}
	time.Sleep(1100 * time.Millisecond)
	if d, _ := a.decide(t, client, hash, "127.0.4.4"); d.Allow || d.Reason != "ip_not_allowed" || d.Binding.Mode != "multiple" {
		t.Fatalf("after the window: %+v", d)
	}
	for _, ip := range []string{"127.0.4.1", "127.0.4.3"} {
		if d, _ := a.decide(t, client, hash, ip); !d.Allow {
			t.Fatalf("%s, learned, refused after the window", ip)
		}
	}
	st, body := a.call(t, tok, http.MethodGet, "/admin/api/bindings?q="+hash, nil)
	var list struct {
		Items []view `json:"items"`
	}
	if st != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 || *list.Items[0].SlotsLeft != 0 ||
		!slices.Equal(list.Items[0].CIDRs, []string{"127.0.4.1/32", "127.0.4.3/32"}) {
		t.Fatalf("list after the window: %d %s", st, body)
	}

	// Pre-bound with no address yet: the first address to use it is learned.
	hash2 := hashKey("learning-prebound-key")
	st, body = a.call(t, tok, http.MethodPost, "/admin/api/bindings", map[string]any{"key_hash": hash2, "mode": "learning", "cidrs": []string{}, "learn_slots": 1})
	if st != http.StatusCreated {
		t.Fatalf("pre-bind learning: %d %s", st, body)
	}
	if d, _ := a.decide(t, client, hash2, "127.0.5.1"); !d.Allow || d.Provisional {
		t.Fatalf("first address of a pre-bound learning binding: %+v", d)
	}
	if d, _ := a.decide(t, client, hash2, "127.0.5.2"); d.Allow {
		t.Fatalf("second address past one slot allowed: %+v", d)
	}
}

// bindingID is the id of the binding of hash, from the admin API.
func bindingID(t *testing.T, a *admindUnderTest, tok, hash string) int64 {
	t.Helper()
	st, body := a.call(t, tok, http.MethodGet, "/admin/api/bindings?q="+hash, nil)
	var list struct {
		Items []struct {
			ID int64 `json:"id"`
		} `json:"items"`
	}
	if st != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 {
		t.Fatalf("binding of %s: %d %s", hash, st, body)
	}
	return list.Items[0].ID
}
