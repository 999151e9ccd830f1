import { download, request, type Page } from './http'

export type RuleMode = 'single' | 'multiple' | 'learning' | 'all'
export type BindingStatus = 'active' | 'banned'

export interface Binding {
  id: number
  key_hint: string
  key_hash: string
  mode: RuleMode
  cidrs: string[]
  status: BindingStatus
  origin: 'first_use' | 'admin' | 'import'
  first_ip: string // '' for a pre-bound binding
  last_ip: string
  created_at: string
  last_used_at: string | null // null: pre-bound, not used yet
  updated_at: string
  note: string
  // A learning rule's bounds and state (absent for the other modes).
  learn_slots?: number
  learn_until?: string
  slots_left?: number // 0 once it holds: full, or past learn_until
}

/** LearnBounds bound a learning rule: its slots and its window from now (seconds). */
export interface LearnBounds {
  learn_slots: number
  learn_window_seconds: number
}

export interface BindingQuery {
  q?: string
  status?: BindingStatus | ''
  mode?: RuleMode | ''
  sort?: string
  order?: 'asc' | 'desc'
  page: number
  page_size: number
}

export interface ChangeReply {
  binding?: Binding
  cache_updated: boolean
}

export const listBindings = (q: BindingQuery) => request<Page<Binding>>('GET', '/bindings', { query: { ...q } })
export const setRule = (id: number, mode: RuleMode, cidrs: string[], learn?: LearnBounds) =>
  request<ChangeReply>('PUT', '/bindings/ip', { body: { id, mode, cidrs, ...(mode === 'learning' ? learn : {}) } })
export const ban = (id: number) => request<ChangeReply>('POST', '/bindings/ban', { body: { id } })
export const unban = (id: number) => request<ChangeReply>('POST', '/bindings/unban', { body: { id } })
export const unbind = (id: number) => request<ChangeReply>('POST', '/bindings/unbind', { body: { id } })
export const setNote = (id: number, note: string) => request<ChangeReply>('PUT', '/bindings/note', { body: { id, note } })

/** NewBinding pre-binds a key before its first use: the raw key (hashed by admind, never stored) or its hash. */
export interface NewBinding {
  key?: string
  key_hash?: string
  mode: RuleMode
  cidrs: string[]
  note?: string
  learn_slots?: number
  learn_window_seconds?: number
}

/** RowError is one row an import refused (row 0: the file itself). */
export interface RowError {
  row: number
  field?: string
  message: string
}

export type TransferFormat = 'csv' | 'json'

export const createBinding = (b: NewBinding) => request<Binding>('POST', '/bindings', { body: b })
export const importBindings = (format: TransferFormat, text: string) =>
  request<{ imported: number }>('POST', '/bindings/import', {
    raw: { contentType: format === 'csv' ? 'text/csv' : 'application/json', text },
  })
export const exportBindings = (format: TransferFormat) =>
  download('/bindings/export', { format }, 'sentinel-bindings.' + format)
