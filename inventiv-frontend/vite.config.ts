/// <reference types="vitest/config" />
// Builds the dashboard into dist/, which the API serves at `/` (same origin:
// the session cookies and the SSE stream need nothing special). In
// development, `npm run dev` proxies the API's routes to INVENTIV_API_URL.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { defineConfig, type ProxyOptions } from 'vite';
import react from '@vitejs/plugin-react';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const api = process.env.INVENTIV_API_URL ?? 'http://127.0.0.1:8003';

// Some API paths are also pages of the app (/instances, /invitations/...):
// a browser navigation (accepts HTML) gets the app, anything else the API,
// as the API itself does in production.
const toApi: ProxyOptions = {
  target: api,
  changeOrigin: false,
  bypass: (req: IncomingMessage) =>
    req.method === 'GET' && (req.headers.accept ?? '').includes('text/html') ? '/index.html' : undefined,
};
const apiPaths = [
  '/auth',
  '/organizations',
  '/instances',
  '/deployments',
  '/services',
  '/hosts',
  '/api-keys',
  '/providers',
  '/zones',
  '/instance_types',
  '/models',
  '/events',
  '/v1',
  '/usage',
  '/finops',
  '/users',
  '/openapi.json',
  '/healthz',
  '/readyz',
];

export default defineConfig({
  plugins: [react()],
  define: { __APP_VERSION__: JSON.stringify(pkg.version) },
  server: {
    host: '127.0.0.1',
    proxy: Object.fromEntries(apiPaths.map((p) => [p, toApi])),
    // The app, and the Rust sources unit tests compare their copies with:
    // the permission matrix (rbac.rs), worker settings' defaults and bounds,
    // reconciliation's verdicts.
    fs: { allow: ['.', '../inventiv-common/src', '../inventiv-providers/src'] },
  },
  // No source map in dist/: everything there is public (the API serves it).
  build: { outDir: 'dist', sourcemap: false, chunkSizeWarningLimit: 800 },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
