import { request } from './http'

export type TokenScope = 'read' | 'write'

/** APIToken is an admin API token as listed: never the token itself. */
export interface APIToken {
  id: number
  name: string
  prefix: string
  scope: TokenScope
  status: 'active' | 'expired' | 'revoked'
  created_by: string
  created_at: string
  expires_at: string
  last_used_at: string | null
  last_used_ip: string
  revoked_at: string | null
  revoked_by: string
}

export const listTokens = () => request<{ items: APIToken[] }>('GET', '/tokens')
/** createToken answers with the token itself: the only time it is ever shown. */
export const createToken = (name: string, scope: TokenScope, expires_in_days: number) =>
  request<APIToken & { token: string }>('POST', '/tokens', { body: { name, scope, expires_in_days } })
export const revokeToken = (id: number) => request<APIToken>('POST', '/tokens/revoke', { body: { id } })
