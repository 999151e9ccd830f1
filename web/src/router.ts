import { createRouter, createWebHistory } from 'vue-router'
import { getToken, setUnauthorizedHandler } from './api/http'

export const router = createRouter({
  history: createWebHistory('/admin/ui/'),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue'), meta: { public: true } },
    {
      path: '/',
      component: () => import('./components/AppLayout.vue'),
      children: [
        { path: '', redirect: { name: 'dashboard' } },
        { path: 'dashboard', name: 'dashboard', component: () => import('./views/DashboardView.vue') },
        { path: 'bindings', name: 'bindings', component: () => import('./views/BindingsView.vue') },
        { path: 'logs', name: 'logs', component: () => import('./views/LogsView.vue') },
        { path: 'audit', name: 'audit', component: () => import('./views/AuditView.vue') },
        { path: 'tokens', name: 'tokens', component: () => import('./views/TokensView.vue') },
        { path: 'settings', name: 'settings', component: () => import('./views/SettingsView.vue') },
      ],
    },
    { path: '/:rest(.*)*', redirect: { name: 'dashboard' } },
  ],
})

// Without a token every page but login sends you to login, which brings you back after.
router.beforeEach((to) => {
  if (!to.meta.public && !getToken()) {
    return { name: 'login', query: { redirect: to.fullPath } }
  }
})

setUnauthorizedHandler(() => {
  const current = router.currentRoute.value
  if (current.name !== 'login') {
    router.push({ name: 'login', query: { redirect: current.fullPath } })
  }
})
