package bindings

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
)

// AuditView is how a binding appears in admin_audit.
type AuditView struct {
	ID      int64    `json:"id"`
	KeyHint string   `json:"key_hint"`
	Mode    Mode     `json:"mode"`
	CIDRs   []string `json:"cidrs"`
	Status  Status   `json:"status"`
	Note    string   `json:"note,omitempty"`
}

// View returns the binding's audit view.
func (b Binding) View() AuditView {
	return AuditView{ID: b.ID, KeyHint: b.KeyHint, Mode: b.Mode, CIDRs: b.CIDRStrings(), Status: b.Status, Note: b.Note}
}

// Query selects bindings for the admin list.
type Query struct {
	Hint     string     // substring of the key hint
	KeyHash  string     // exact key (the raw key hashed server-side)
	IP       netip.Addr // bindings whose rule, first or last address matches
	Status   Status     // "" for any
	Mode     Mode       // "" for any
	Sort     string     // one of SortColumns
	Desc     bool
	Page     int // from 1
	PageSize int
}

// SortColumns are the fields a binding list may be sorted by.
var SortColumns = []string{"id", "created_at", "last_used_at", "updated_at", "key_hint", "status"}

// AdminStore is what admin changes need from PostgreSQL. Each change and its audit row are
// written in one transaction.
type AdminStore interface {
	ListBindings(ctx context.Context, q Query) ([]Binding, int, error)
	// ChangeBinding locks the row, applies change, writes it with a new version and the audit
	// row (Before/After are the binding's View) and returns the binding before and after.
	ChangeBinding(ctx context.Context, id int64, change func(*Binding) error, a audit.Entry) (Binding, Binding, error)
	// DeleteBinding removes the row and writes the audit row; it returns the deleted binding
	// and a fresh version for the cache tombstone.
	DeleteBinding(ctx context.Context, id int64, a audit.Entry) (Binding, int64, error)
	// CreateBindings inserts pre-bound bindings and the audit row entry(created) gives, in one
	// transaction; if any key is bound already it writes nothing and returns those keys'
	// binding ids by hash.
	CreateBindings(ctx context.Context, list []Binding, entry func(created []Binding) audit.Entry) ([]Binding, map[string]int64, error)
	// EachBinding calls fn for every binding, in id order.
	EachBinding(ctx context.Context, fn func(Binding) error) error
	// RecordAudit writes an audit row for an action that changes no row (an export).
	RecordAudit(ctx context.Context, a audit.Entry) error
}

// AdminCache is what admin changes need from Redis.
type AdminCache interface {
	ChangeBinding(ctx context.Context, keyHash, entry string, version int64, ttl time.Duration) error
	DropBinding(ctx context.Context, keyHash string, version int64, ttl time.Duration) error
}

// Admin applies admin changes: PostgreSQL first (with audit), then Redis at once, so the
// plugin's next cache miss sees the new state. A Redis failure does not undo the change: it
// is retried by RetryInvalidations until Redis takes it.
type Admin struct {
	Store         AdminStore
	Cache         AdminCache
	Bound         BoundSet // nil: none kept
	Log           *slog.Logger
	RedisEntryTTL time.Duration // lifetime of a binding entry in Redis
	Now           func() time.Time

	mu      sync.Mutex
	pending map[string]func(context.Context) error // by key hash; the newest change wins
}

// Change is an admin change's result.
type Change struct {
	Before, After Binding
	// CacheUpdated is false when Redis could not be updated yet; the change holds in
	// PostgreSQL and the cache update is retried in the background.
	CacheUpdated bool
}

// SetRule replaces a binding's rule; learn bounds a learning rule (zero for the others).
func (a *Admin) SetRule(ctx context.Context, who audit.Actor, id int64, mode Mode, entries []string, learn LearnRule) (Change, error) {
	var probe Binding
	if err := setRule(&probe, mode, entries, learn); err != nil {
		return Change{}, err // refused before a row is locked
	}
	return a.change(ctx, who, id, "binding.set_rule", func(b *Binding) error {
		return setRule(b, mode, entries, learn)
	})
}

// Ban refuses the key everywhere until unbanned.
func (a *Admin) Ban(ctx context.Context, who audit.Actor, id int64) (Change, error) {
	return a.change(ctx, who, id, "binding.ban", func(b *Binding) error {
		b.Status = StatusBanned
		return nil
	})
}

// Unban lets the key be used again under its rule.
func (a *Admin) Unban(ctx context.Context, who audit.Actor, id int64) (Change, error) {
	return a.change(ctx, who, id, "binding.unban", func(b *Binding) error {
		b.Status = StatusActive
		return nil
	})
}

// SetNote replaces a binding's note (the operator's own words: a customer, a ticket). The
// note is not part of the binding's Redis entry, so change leaves the plugins' caches alone.
func (a *Admin) SetNote(ctx context.Context, who audit.Actor, id int64, note string) (Change, error) {
	if err := checkNote(note); err != nil {
		return Change{}, err
	}
	return a.change(ctx, who, id, "binding.set_note", func(b *Binding) error {
		b.Note = note
		return nil
	})
}

func (a *Admin) change(ctx context.Context, who audit.Actor, id int64, action string, apply func(*Binding) error) (Change, error) {
	before, after, err := a.Store.ChangeBinding(ctx, id, func(b *Binding) error {
		if err := apply(b); err != nil {
			return err
		}
		b.UpdatedAt = a.Now()
		return nil
	}, audit.Entry{Actor: who, Action: action, Target: fmt.Sprintf("binding:%d", id)})
	if err != nil {
		return Change{}, err
	}
	// Only a change to what the plugin reads (the entry) is pushed to Redis and moves the
	// generation, which empties every plugin's local cache; a note, or a ban of a banned key,
	// leaves them alone.
	now := a.Now()
	ok := after.CacheEntry(now) == before.CacheEntry(now) || a.updateCache(ctx, after.KeyHash, func(ctx context.Context) error {
		return a.Cache.ChangeBinding(ctx, after.KeyHash, after.CacheEntry(now), after.Version, a.RedisEntryTTL)
	})
	a.Log.Info("binding changed", "action", action, "actor", who.Name, "binding_id", id, "key_hint", after.KeyHint,
		"before", before.View(), "after", after.View())
	return Change{Before: before, After: after, CacheUpdated: ok}, nil
}

// Unbind deletes the binding: the key binds again on its next use.
func (a *Admin) Unbind(ctx context.Context, who audit.Actor, id int64) (Change, error) {
	before, version, err := a.Store.DeleteBinding(ctx, id, audit.Entry{Actor: who, Action: "binding.unbind", Target: fmt.Sprintf("binding:%d", id)})
	if err != nil {
		return Change{}, err
	}
	ok := a.updateCache(ctx, before.KeyHash, func(ctx context.Context) error {
		return a.Cache.DropBinding(ctx, before.KeyHash, version, a.RedisEntryTTL)
	})
	removeBound(ctx, a.Bound, a.Log, before.KeyHash)
	a.Log.Info("binding removed", "action", "binding.unbind", "actor", who.Name, "binding_id", id, "key_hint", before.KeyHint)
	return Change{Before: before, CacheUpdated: ok}, nil
}

// DropCached removes an entry for a change made outside the admin API (archive), with the
// same ordering and retries as admin changes.
func (a *Admin) DropCached(ctx context.Context, keyHash string, version int64) {
	a.updateCache(ctx, keyHash, func(ctx context.Context) error {
		return a.Cache.DropBinding(ctx, keyHash, version, a.RedisEntryTTL)
	})
	removeBound(ctx, a.Bound, a.Log, keyHash)
}

func (a *Admin) updateCache(ctx context.Context, keyHash string, update func(context.Context) error) bool {
	err := update(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		delete(a.pending, keyHash)
		return true
	}
	a.Log.Error("cache update after admin change failed; retrying in the background", "err", err)
	if a.pending == nil {
		a.pending = map[string]func(context.Context) error{}
	}
	a.pending[keyHash] = update
	return false
}

// RetryInvalidations pushes cache updates that failed earlier. Versions make a late retry
// harmless: Redis refuses it if a newer entry is there already.
func (a *Admin) RetryInvalidations(ctx context.Context) {
	a.mu.Lock()
	todo := a.pending
	a.pending = nil
	a.mu.Unlock()
	for hash, update := range todo {
		if err := update(ctx); err != nil {
			a.mu.Lock()
			if a.pending == nil {
				a.pending = map[string]func(context.Context) error{}
			}
			if _, newer := a.pending[hash]; !newer {
				a.pending[hash] = update
			}
			a.mu.Unlock()
		}
	}
}

// PendingInvalidations counts cache updates still waiting for Redis.
func (a *Admin) PendingInvalidations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}
