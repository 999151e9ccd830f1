import { createApp } from 'vue'
import 'element-plus/theme-chalk/el-message.css'
import 'element-plus/theme-chalk/el-message-box.css'
import App from './App.vue'
import { router } from './router'
import { i18n } from './i18n'
import './style.css'

createApp(App).use(router).use(i18n).mount('#app')
