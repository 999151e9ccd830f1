import { reactive, ref } from 'vue'
import { ElMessage } from 'element-plus'
import type { Page } from './api/http'
import { usePagedList } from './usePagedList'

/** A time range from the date picker as the API's from/to (RFC 3339, whole seconds). */
export function timeRange(range: [Date, Date] | null) {
  const iso = (d?: Date) => d?.toISOString().replace(/\.\d{3}Z$/, 'Z')
  return { from: iso(range?.[0]), to: iso(range?.[1]) }
}

/**
 * useFilteredList is a filtered, paged list with a CSV export of the same filters (the
 * intercept log, the audit trail). initial gives the empty filters (reset restores them);
 * toQuery turns the filters into the API's query.
 */
export function useFilteredList<F extends object, Q extends object, R>(opts: {
  initial: () => F
  toQuery: (f: F) => Q
  list: (q: Q & { page: number; page_size: number }) => Promise<Page<R>>
  exportCSV: (q: Q) => Promise<void>
}) {
  const filters = reactive(opts.initial()) as F
  const page = ref(1)
  const pageSize = ref(20)
  const exporting = ref(false)
  const paged = usePagedList<R>(() => opts.list({ ...opts.toQuery(filters), page: page.value, page_size: pageSize.value }))

  function search() {
    page.value = 1
    paged.load()
  }
  function reset() {
    Object.assign(filters, opts.initial())
    search()
  }
  async function doExport() {
    exporting.value = true
    try {
      await opts.exportCSV(opts.toQuery(filters))
    } catch (e) {
      ElMessage.error((e as Error).message)
    } finally {
      exporting.value = false
    }
  }
  return { filters, page, pageSize, exporting, ...paged, search, reset, doExport }
}
