import { download, request, type Page } from './http'

export interface Intercept {
  id: number
  at: string
  key_hint: string
  key_hash: string
  ip: string
  reason: 'ip_not_allowed' | 'key_banned'
  // absent on rows recorded before admind recorded outcomes
  outcome?: 'refused' | 'forwarded'
  method: string
  path: string
  user_agent: string
}

export interface LogQuery {
  key?: string
  ip?: string
  from?: string
  to?: string
  reason?: string
  outcome?: string
  page?: number
  page_size?: number
}

export const listLogs = (q: LogQuery) => request<Page<Intercept>>('GET', '/logs', { query: { ...q } })
export const exportLogs = (q: LogQuery) =>
  download('/logs/export', { ...q, page: undefined, page_size: undefined }, 'sentinel-intercepts.csv')
