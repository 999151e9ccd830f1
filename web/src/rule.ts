// Client-side checks of rule input, so the dialog can point at a bad entry before saving.
// admind validates again (and is the authority): its message is shown when it refuses.

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const ipv6 = /^[0-9a-fA-F:]+(\.\d+\.\d+\.\d+\.\d+)?$/

export type RuleProblem = { key: string; entry?: string } | null

export function checkEntry(entry: string): RuleProblem {
  const [addr, bits, extra] = entry.split('/')
  if (extra !== undefined || !addr) return { key: 'rule.invalid', entry }
  const v4 = ipv4.test(addr)
  const v6 = !v4 && addr.includes(':') && ipv6.test(addr)
  if (!v4 && !v6) return { key: 'rule.invalid', entry }
  if (bits !== undefined) {
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > (v4 ? 32 : 128)) return { key: 'rule.invalid', entry }
    if (Number(bits) === 0) return { key: 'rule.catchAll', entry }
  }
  return null
}

export function checkRule(mode: string, entries: string[], learnSlots = 64): RuleProblem {
  if (mode === 'all') return null
  if (mode === 'single' && entries.length !== 1) return { key: 'rule.needOne' }
  if (mode === 'multiple' && entries.length === 0) return { key: 'rule.needSome' }
  if (entries.length > 64) return { key: 'rule.tooMany' }
  if (mode === 'learning' && entries.length > learnSlots) return { key: 'rule.overSlots' }
  for (const e of entries) {
    const p = checkEntry(e)
    if (p) return p
  }
  return null
}
