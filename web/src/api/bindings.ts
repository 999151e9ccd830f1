import { request, type Page } from './http'

export type RuleMode = 'single' | 'multiple' | 'all'
export type BindingStatus = 'active' | 'banned'

export interface Binding {
  id: number
  key_hint: string
  key_hash: string
  mode: RuleMode
  cidrs: string[]
  status: BindingStatus
  first_ip: string
  last_ip: string
  created_at: string
  last_used_at: string
  updated_at: string
  note: string
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
export const setRule = (id: number, mode: RuleMode, cidrs: string[]) =>
  request<ChangeReply>('PUT', '/bindings/ip', { body: { id, mode, cidrs } })
export const ban = (id: number) => request<ChangeReply>('POST', '/bindings/ban', { body: { id } })
export const unban = (id: number) => request<ChangeReply>('POST', '/bindings/unban', { body: { id } })
export const unbind = (id: number) => request<ChangeReply>('POST', '/bindings/unbind', { body: { id } })
