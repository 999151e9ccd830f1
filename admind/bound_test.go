package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// Every way a binding row comes or goes keeps the bound set the plugin reads (a superset of
// the rows while its marker exists): a first use, a refused claim, a pre-binding, an import, a
// binding moved from its legacy hash, an unbind.
func TestBoundSetFollowsBindings(t *testing.T) {
	a := startAdmind(t, nil)
	tok := a.login(t)
	conn := a.db(t)
	rdb := a.redis.Client(t)
	ctx := context.Background()
	member := func(h string) bool {
		return rdb.SIsMember(ctx, contract.BoundSetKey, contract.BoundMember(h)).Val()
	}
	testenv.WaitFor(t, 10*time.Second, "the bound set's first rebuild", func() bool {
		return rdb.Exists(ctx, contract.BoundCompleteKey).Val() == 1
	})
	holdsRows := func(step string) {
		t.Helper()
		if rdb.Exists(ctx, contract.BoundCompleteKey).Val() != 1 {
			t.Fatalf("%s: the bound set is no longer marked complete", step)
		}
		rows, err := conn.Query(ctx, `SELECT key_hash FROM token_bindings`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				t.Fatal(err)
			}
			if !member(h) {
				t.Fatalf("%s: binding %s… is missing from the bound set", step, h[:16])
			}
		}
	}

	first := "boundsetfirstuse0123456789"
	a.decideKey(t, first, "127.0.0.30")
	holdsRows("first use")

	refused := hashKey("boundsetrefused0123456789")
	d, st := a.internal(t, http.DefaultClient, "decide", refused, "sk-…", "127.0.0.31", "")
	if st != 200 || !d.Allow || !d.Provisional {
		t.Fatalf("claim: %d %+v", st, d)
	}
	if _, st := a.internal(t, http.DefaultClient, "release", refused, "sk-…", "127.0.0.31", d.Claim); st != 200 {
		t.Fatalf("release: %d", st)
	}
	if member(refused) {
		t.Error("a claim New API refused left its key in the bound set")
	}

	prebound := strings.Repeat("ab", 32)
	if st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings", map[string]any{"key_hash": prebound, "mode": "all"}); st != http.StatusCreated {
		t.Fatalf("pre-bind: %d %s", st, body)
	}
	holdsRows("pre-binding")

	// An import, one of whose rows stands for a binding made before the canonical key form
	// (under the hash of the key as spelled), which a decide then moves to the canonical hash.
	legacy, canonical := hashKey("sk-boundsetlegacy0123456789"), hashKey("boundsetlegacy0123456789")
	if st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings/import?format=csv",
		"key_hash,mode,cidrs\n"+strings.Repeat("cd", 32)+",all,\n"+legacy+",single,127.0.0.32\n"); st != http.StatusOK {
		t.Fatalf("import: %d %s", st, body)
	}
	holdsRows("import")
	req, _ := http.NewRequest(http.MethodPost, a.internalURL+"/internal/v1/decide", strings.NewReader(fmt.Sprintf(
		`{"key_hash":%q,"legacy_key_hash":%q,"key_hint":"sk-…","ip":"127.0.0.32","method":"POST","path":"/v1/chat/completions","user_agent":"test"}`, canonical, legacy)))
	req.Header.Set("Authorization", "Bearer "+testInternalToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("decide with a legacy hash: %v %v", resp, err)
	}
	resp.Body.Close()
	if n := count(t, conn, `SELECT count(*) FROM token_bindings WHERE key_hash = $1`, canonical); n != 1 {
		t.Fatalf("the legacy binding was not moved (%d rows under the canonical hash)", n)
	}
	holdsRows("a binding moved from its legacy hash")

	id := count(t, conn, `SELECT id FROM token_bindings WHERE key_hash = $1`, hashKey(first))
	if st, body := a.call(t, tok, http.MethodPost, "/admin/api/bindings/unbind", map[string]any{"id": id}); st != 200 {
		t.Fatalf("unbind: %d %s", st, body)
	}
	if member(hashKey(first)) {
		t.Error("an unbound key is still in the bound set")
	}
	holdsRows("unbind")
}
