// Package audit describes admin_audit rows: who changed what, from where, before and after.
// The store writes an entry in the same transaction as the change it records.
package audit

import "net/netip"

// Actor is who makes an admin change.
type Actor struct {
	Name string
	IP   netip.Addr
}

// Entry is one admin_audit row. Before and After are JSON-ready views of the changed object;
// they never hold a raw key or a secret.
type Entry struct {
	Actor  Actor
	Action string
	Target string
	Before any
	After  any
}
