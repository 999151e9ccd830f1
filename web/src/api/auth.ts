import { request, setToken, clearToken } from './http'

export interface LoginReply {
  token: string
  expires_at: string
}

export async function login(username: string, password: string): Promise<void> {
  const r = await request<LoginReply>('POST', '/login', { body: { username, password } })
  setToken(r.token)
}

/** logout ends the session on the server too (the token is refused from then on), then
 * forgets the token; it is forgotten even when the server cannot be reached. */
export async function logout(): Promise<void> {
  try {
    await request('POST', '/logout')
  } catch {
    // nothing to do: the token is dropped below either way
  } finally {
    clearToken()
  }
}
