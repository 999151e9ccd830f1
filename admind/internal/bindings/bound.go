package bindings

import (
	"context"
	"log/slog"
)

// BoundSet is the set of bound key hashes in Redis that lets the plugin refuse a source over
// its claim limit without asking admind (cache.Cache, bound.go). A key hash is added before
// its binding row is written and removed after the row is gone, so the set never lacks a
// binding; when an add fails the set is marked incomplete, and marked again once the row is
// written, so that only a rebuild begun after the row marks it complete.
type BoundSet interface {
	AddBound(ctx context.Context, keyHashes ...string) error
	RemoveBound(ctx context.Context, keyHashes ...string) error
	MarkIncomplete(ctx context.Context)
}

// addBound adds before binding rows are written, and returns what to call once they are. A
// failure is logged and the write goes on: the binding must not be lost to Redis being down.
func addBound(ctx context.Context, set BoundSet, log *slog.Logger, keyHashes ...string) (written func()) {
	if set == nil {
		return func() {}
	}
	if err := set.AddBound(ctx, keyHashes...); err != nil {
		log.Warn("bound set not updated; it is rebuilt before the plugin relies on it again", "err", err)
		return func() { set.MarkIncomplete(context.WithoutCancel(ctx)) }
	}
	return func() {}
}

// removeBound removes after a binding row is gone; a failure leaves an extra member, which
// only sends that key to admind until the next rebuild.
func removeBound(ctx context.Context, set BoundSet, log *slog.Logger, keyHashes ...string) {
	if set == nil {
		return
	}
	if err := set.RemoveBound(ctx, keyHashes...); err != nil {
		log.Warn("bound set keeps a removed binding until its next rebuild", "err", err)
	}
}
