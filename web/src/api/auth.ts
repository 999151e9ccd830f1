import { request, setToken, clearToken } from './http'

export interface LoginReply {
  token: string
  expires_at: string
}

export async function login(username: string, password: string): Promise<void> {
  const r = await request<LoginReply>('POST', '/login', { body: { username, password } })
  setToken(r.token)
}

export function logout() {
  clearToken()
}
