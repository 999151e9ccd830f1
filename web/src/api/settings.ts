import { request } from './http'

export type WebhookFormat = 'json' | 'slack' | 'dingtalk' | 'feishu' | 'wecom' | 'telegram' | 'gotify' | 'ntfy'

export interface Settings {
  alert_webhook_url: string
  alert_webhook_format: WebhookFormat
  alert_threshold_count: number
  alert_threshold_seconds: number
  auto_ban_on_alert: boolean
  alert_email_to: string
  smtp_addr: string
  smtp_from: string
  archive_days: number
  log_retention_days: number
  failsafe_mode: 'closed' | 'open'
  bind_prefix_v4: number
  bind_prefix_v6: number
  claim_limit: number
  claim_window_seconds: number
  claim_prefix_v4: number
  claim_prefix_v6: number
  scan_threshold: number
  scan_window_seconds: number
  scan_block_seconds: number
  first_use_rule: 'single' | 'learning'
  learning_slots: number
  learning_window_seconds: number
}

export const getSettings = () => request<Settings>('GET', '/settings')
export const saveSettings = (s: Settings) => request<Settings>('PUT', '/settings', { body: s })
export const sendTestAlert = () => request<{ delivered: boolean }>('POST', '/alerts/test')
