import { download, request, type Page } from './http'

export interface AuditRecord {
  id: number
  at: string
  actor: string
  ip: string
  action: string
  target: string
  before: unknown
  after: unknown
}

export interface AuditQuery {
  actor?: string
  action?: string
  target?: string
  from?: string
  to?: string
  page?: number
  page_size?: number
}

export const listAudit = (q: AuditQuery) => request<Page<AuditRecord>>('GET', '/audit', { query: { ...q } })
export const exportAudit = (q: AuditQuery) =>
  download('/audit/export', { ...q, page: undefined, page_size: undefined }, 'sentinel-audit.csv')
