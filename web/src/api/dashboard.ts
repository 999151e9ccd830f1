import { request } from './http'

export interface DayCounts {
  day: string
  allowed: number
  intercepted: number
  forwarded: number // of intercepted, forwarded in monitor mode
}

export interface Dashboard {
  totals: { active: number; banned: number; archived: number }
  today: DayCounts
  days: DayCounts[]
  allowed_counted: boolean
  // forwarded: of count, forwarded in monitor mode
  top_keys: { key_hint: string; key_hash: string; count: number; forwarded: number }[]
  top_ips: { ip: string; count: number; forwarded: number }[]
  since: string
  generated_at: string
}

export const getDashboard = () => request<Dashboard>('GET', '/dashboard')
