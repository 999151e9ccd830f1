// The one HTTP wrapper: every API call goes through request(), which adds the admin token,
// turns error bodies ({"error":{"code","message"}}) into ApiError, and sends a 401 back to
// the login page (returning to the current page afterwards).

const TOKEN_KEY = 'sentinel.token'
const API = '/admin/api'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** What the error names beyond its message (an import's bad rows). */
    readonly details?: unknown,
  ) {
    super(message)
  }
}

let onUnauthorized: () => void = () => {}

/** setUnauthorizedHandler is called by the router: a 401 logs out and shows the login page. */
export function setUnauthorizedHandler(fn: () => void) {
  onUnauthorized = fn
}

// The token lives for the browser tab only (sessionStorage), never in a cookie.
export const getToken = () => sessionStorage.getItem(TOKEN_KEY)
export const setToken = (t: string) => sessionStorage.setItem(TOKEN_KEY, t)
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY)

export type Query = Record<string, string | number | undefined | null>

function url(path: string, query?: Query): string {
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') qs.set(k, String(v))
  }
  const s = qs.toString()
  return API + path + (s ? '?' + s : '')
}

/** RawBody is sent as it is (a file's text), not as JSON. */
export interface RawBody {
  contentType: string
  text: string
}

type SendOpts = { body?: unknown; raw?: RawBody; query?: Query }

async function send(method: string, path: string, opts: SendOpts = {}): Promise<Response> {
  const headers: Record<string, string> = {}
  const token = getToken()
  if (token) headers.Authorization = 'Bearer ' + token
  let body: string | undefined
  if (opts.raw) {
    headers['Content-Type'] = opts.raw.contentType
    body = opts.raw.text
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(opts.body)
  }
  const resp = await fetch(url(path, opts.query), { method, headers, body })
  if (resp.ok) return resp
  let code = 'http_' + resp.status
  let message = resp.statusText || 'request failed'
  let details: unknown
  try {
    const e = (await resp.json()) as { error?: { code?: string; message?: string; rows?: unknown } }
    code = e.error?.code ?? code
    message = e.error?.message ?? message
    details = e.error?.rows
  } catch {
    // not JSON: keep the status text
  }
  if (resp.status === 401 && path !== '/login') {
    clearToken()
    onUnauthorized()
  }
  throw new ApiError(resp.status, code, message, details)
}

export async function request<T>(method: string, path: string, opts: SendOpts = {}): Promise<T> {
  const resp = await send(method, path, opts)
  return (await resp.json()) as T
}

/** download fetches a file with the token and hands it to the browser as a download. */
export async function download(path: string, query: Query, fallbackName: string): Promise<void> {
  const resp = await send('GET', path, { query })
  const blob = await resp.blob()
  const disposition = resp.headers.get('Content-Disposition') ?? ''
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? fallbackName
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}

export interface Page<T> {
  items: T[]
  total: number
  page: number
  page_size: number
}
