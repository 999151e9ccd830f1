package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// boundHash is a key hash whose member (its first 16 hex characters) differs for every i.
func boundHash(i int) string { return fmt.Sprintf("%016x%048d", i+1, 0) }

// The plugin refuses a source over its claim limit without admind only for a key missing from
// a complete bound set, so the set must hold every binding whenever its marker exists: through
// rebuilds, adds made while a rebuild reads PostgreSQL, failed adds, a flushed Redis and a
// rebuild another admind holds.
func TestBoundSetHoldsEveryBindingWhileComplete(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	c := New(rdb)
	ctx := context.Background()
	rows := map[string]bool{boundHash(1): true, boundHash(2): true} // PostgreSQL's bindings
	each := func(ctx context.Context, fn func(string) error) error {
		for h := range rows {
			if err := fn(h); err != nil {
				return err
			}
		}
		return nil
	}
	complete := func() bool { return rdb.Exists(ctx, contract.BoundCompleteKey).Val() == 1 }
	member := func(h string) bool {
		return rdb.SIsMember(ctx, contract.BoundSetKey, contract.BoundMember(h)).Val()
	}
	keep := func(wantRebuilt bool) {
		t.Helper()
		rebuilt, err := c.KeepBound(ctx, each)
		if err != nil || rebuilt != wantRebuilt {
			t.Fatalf("KeepBound: rebuilt %v, %v; want rebuilt %v", rebuilt, err, wantRebuilt)
		}
	}
	// holdsRows: the set is a superset of the rows whenever it claims to be complete.
	holdsRows := func(when string) {
		t.Helper()
		if !complete() {
			return
		}
		for h := range rows {
			if !member(h) {
				t.Fatalf("%s: the set is marked complete but lacks binding %s", when, h[:16])
			}
		}
	}

	// Nothing before the first rebuild, and an add then creates no key (it would have no TTL).
	if err := c.AddBound(ctx, boundHash(9)); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, contract.BoundSetKey, contract.BoundCompleteKey).Val(); n != 0 {
		t.Fatalf("%d bound keys before any rebuild", n)
	}
	keep(true)
	holdsRows("after the first rebuild")
	if !complete() {
		t.Fatal("no marker after a rebuild")
	}
	keep(false) // complete: renewed only

	// A first use: added before its row is written; an unbind: removed after.
	if err := c.AddBound(ctx, boundHash(3)); err != nil {
		t.Fatal(err)
	}
	rows[boundHash(3)] = true
	holdsRows("after a first use")
	delete(rows, boundHash(1))
	if err := c.RemoveBound(ctx, boundHash(1)); err != nil {
		t.Fatal(err)
	}
	if member(boundHash(1)) {
		t.Error("an unbound key is still in the set")
	}

	// A binding written while a rebuild reads PostgreSQL, after its read passed: its add went
	// to the rebuild too.
	rdb.Del(ctx, contract.BoundCompleteKey)
	readingEach := func(ctx context.Context, fn func(string) error) error {
		if err := each(ctx, fn); err != nil {
			return err
		}
		if err := c.AddBound(ctx, boundHash(4)); err != nil {
			return err
		}
		rows[boundHash(4)] = true
		return nil
	}
	if rebuilt, err := c.KeepBound(ctx, readingEach); err != nil || !rebuilt {
		t.Fatalf("KeepBound: %v, %v", rebuilt, err)
	}
	holdsRows("after a rebuild that a first use overtook")

	// A failed add (here: its context was cancelled, so neither the add nor the marker's removal
	// reached Redis) leaves the marker, but the next KeepBound drops it and rebuilds.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.AddBound(cancelled, boundHash(5)); err == nil {
		t.Fatal("an add with a cancelled context succeeded")
	}
	rows[boundHash(5)] = true
	keep(true)
	holdsRows("after a failed add")
	keep(false)

	// Redis lost everything: the set is rebuilt.
	rdb.FlushDB(ctx)
	holdsRows("after a flush")
	keep(true)
	holdsRows("after the rebuild following a flush")

	// Another admind holds the rebuild: this one neither waits nor marks the set complete.
	rdb.Del(ctx, contract.BoundCompleteKey)
	rdb.Set(ctx, boundLockKey, "someone else", time.Minute)
	keep(false)
	if complete() {
		t.Error("marked complete while another admind's rebuild holds the lock")
	}
	rdb.Del(ctx, boundLockKey)
	keep(true)
	holdsRows("at the end")

	for _, k := range rdb.Keys(ctx, "sentinel:*").Val() {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("%s has no TTL", k)
		}
	}
	if n := rdb.SCard(ctx, contract.BoundSetKey).Val(); n != int64(len(rows)+1) { // + the placeholder
		t.Errorf("%d members, want the %d bindings and the placeholder", n, len(rows))
	}
}

// An import adds its bindings in one call: more than Lua's unpack takes at once.
func TestBoundSetTakesALargeAdd(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := srv.Client(t)
	c := New(rdb)
	ctx := context.Background()
	if _, err := c.KeepBound(ctx, func(context.Context, func(string) error) error { return nil }); err != nil {
		t.Fatal(err)
	}
	hashes := make([]string, 20000)
	for i := range hashes {
		hashes[i] = boundHash(i)
	}
	if err := c.AddBound(ctx, hashes...); err != nil {
		t.Fatal(err)
	}
	if n := rdb.SCard(ctx, contract.BoundSetKey).Val(); n != int64(len(hashes)+1) {
		t.Errorf("%d members after adding %d", n, len(hashes))
	}
}
