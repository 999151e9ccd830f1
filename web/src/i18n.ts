import { createI18n } from 'vue-i18n'
import en from './locales/en'
import zhCN from './locales/zh-CN'

export type Locale = 'en' | 'zh-CN'
const LOCALE_KEY = 'sentinel.locale'

function initialLocale(): Locale {
  const saved = localStorage.getItem(LOCALE_KEY)
  if (saved === 'en' || saved === 'zh-CN') return saved
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en'
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zhCN },
})

/** setLocale switches the language and remembers it. */
export function setLocale(l: Locale) {
  i18n.global.locale.value = l
  localStorage.setItem(LOCALE_KEY, l)
  document.documentElement.lang = l
}
