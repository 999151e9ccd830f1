import { computed, ref } from 'vue'
import { useI18n } from 'vue-i18n'
import type { RuleMode } from './api/bindings'
import { checkRule } from './rule'

/** useRuleInput is a rule being typed: its mode, its text, the entries the text lists and the
 * first problem with them, named as the admin types (RuleFields shows them). */
export function useRuleInput() {
  const { t } = useI18n()
  const mode = ref<RuleMode>('single')
  const text = ref('')
  const entries = computed(() =>
    mode.value === 'all'
      ? []
      : text.value
          .split(/[\n,]/)
          .map((s) => s.trim())
          .filter((s) => s !== ''),
  )
  const problem = computed(() => {
    const p = checkRule(mode.value, entries.value)
    return p ? t(p.key, { entry: p.entry ?? '' }) : ''
  })
  return { mode, text, entries, problem }
}
