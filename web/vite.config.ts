import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import AutoImport from 'unplugin-auto-import/vite'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

// admind serves the build at /admin/ui/ (go:embed of dist/). `npm run dev` proxies the API
// to an admind on ADMIND_URL (default http://127.0.0.1:8080).
export default defineConfig({
  base: '/admin/ui/',
  plugins: [
    vue(),
    // Element Plus imported on demand: only the components the pages use are bundled.
    AutoImport({ resolvers: [ElementPlusResolver()], dts: 'src/auto-imports.d.ts' }),
    Components({ resolvers: [ElementPlusResolver()], dts: 'src/components.d.ts' }),
  ],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { '/admin/api': process.env.ADMIND_URL ?? 'http://127.0.0.1:8080' },
  },
})
