import { ref } from 'vue'
import { ElMessage } from 'element-plus'
import { i18n } from './i18n'
import type { Page } from './api/http'

/** usePagedList holds one page of a list endpoint: its rows, the total, and a loading flag. */
export function usePagedList<T>(fetch: () => Promise<Page<T>>) {
  const rows = ref<T[]>([])
  const total = ref(0)
  const loading = ref(false)
  async function load() {
    loading.value = true
    try {
      const p = await fetch()
      rows.value = p.items
      total.value = p.total
    } catch (e) {
      ElMessage.error(i18n.global.t('common.loadFailed', { message: (e as Error).message }))
    } finally {
      loading.value = false
    }
  }
  return { rows, total, loading, load }
}
