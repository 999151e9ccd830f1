package store

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/key-ip-sentinel/sentinel/admind/internal/audit"
)

const auditColumns = `id, created_at, actor, ip, action, target, before, after`

func auditWhere(q audit.Query) where {
	var w where
	if q.Actor != "" {
		w.add(`actor = $?`, q.Actor)
	}
	if strings.HasSuffix(q.Action, ".") {
		w.add(`starts_with(action, $?)`, q.Action)
	} else if q.Action != "" {
		w.add(`action = $?`, q.Action)
	}
	if q.Target != "" {
		w.add(`target = $?`, q.Target)
	}
	if !q.From.IsZero() {
		w.add(`created_at >= $?`, q.From)
	}
	if !q.To.IsZero() {
		w.add(`created_at < $?`, q.To)
	}
	return w
}

func scanAudit(row pgx.Row) (audit.Record, error) {
	var r audit.Record
	var ip *netip.Addr
	err := row.Scan(&r.ID, &r.At, &r.Actor, &ip, &r.Action, &r.Target, &r.Before, &r.After)
	if ip != nil {
		r.IP = *ip
	}
	return r, err
}

// ListAudit returns one page of admin_audit rows, newest first, and the total that match.
func (s *Store) ListAudit(ctx context.Context, q audit.Query) ([]audit.Record, int, error) {
	w := auditWhere(q)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM admin_audit`+w.sql(), w.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count audit: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM admin_audit`+w.sql()+
		` ORDER BY created_at DESC, id DESC LIMIT `+strconv.Itoa(q.PageSize)+` OFFSET `+strconv.Itoa((q.Page-1)*q.PageSize), w.args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list audit: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Record, error) { return scanAudit(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("store: list audit: %w", err)
	}
	return list, total, nil
}

// EachAudit streams every matching row, newest first, to fn without holding them in memory.
func (s *Store) EachAudit(ctx context.Context, q audit.Query, fn func(audit.Record) error) error {
	w := auditWhere(q)
	return eachRow(ctx, s, "export audit", `SELECT `+auditColumns+` FROM admin_audit`+w.sql()+` ORDER BY created_at DESC, id DESC`, w.args,
		scanAudit, fn)
}
