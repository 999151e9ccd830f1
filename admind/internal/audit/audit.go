// Package audit describes admin_audit rows: who changed what, from where, before and after.
// The store writes an entry in the same transaction as the change it records.
package audit

import (
	"encoding/json"
	"net/netip"
	"time"
)

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

// Record is an admin_audit row as it is read back. Before and After are the JSON the change
// stored (null when there is none).
type Record struct {
	ID     int64
	At     time.Time
	Actor  string
	IP     netip.Addr // invalid when the row has none (a change by admind itself)
	Action string
	Target string
	Before json.RawMessage
	After  json.RawMessage
}

// Query selects audit rows: each non-empty field must match. Action matches exactly, or as a
// prefix when it ends with "." ("binding." is every binding change).
type Query struct {
	Actor    string
	Action   string
	Target   string
	From, To time.Time // zero for open ends; From inclusive, To exclusive
	Page     int       // from 1; 0 with PageSize 0 means every row (export)
	PageSize int
}
