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
  // A learning rule's bounds, as the form shows them: slots, and the window in hours.
  const learnSlots = ref(3)
  const learnHours = ref(24)
  const entries = computed(() =>
    mode.value === 'all'
      ? []
      : text.value
          .split(/[\n,]/)
          .map((s) => s.trim())
          .filter((s) => s !== ''),
  )
  const problem = computed(() => {
    const p = checkRule(mode.value, entries.value, learnSlots.value)
    return p ? t(p.key, { entry: p.entry ?? '' }) : ''
  })
  const learn = computed(() => ({ learn_slots: learnSlots.value, learn_window_seconds: Math.round(learnHours.value * 3600) }))
  return { mode, text, entries, problem, learnSlots, learnHours, learn }
}
