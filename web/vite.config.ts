import { defineConfig } from 'vitest/config';

// The API and the realtime service, as `scripts/up` runs them. The dev and preview servers
// proxy to them so the page talks to its own origin, as it does behind the Ingress.
const api = process.env.POLLSTREAM_API_URL ?? 'http://127.0.0.1:3001';
const realtime = process.env.POLLSTREAM_REALTIME_URL ?? 'http://127.0.0.1:3003';

// `Host` is passed on as the browser sent it (no `changeOrigin`): realtime-service lets a page
// connect when its `Origin` matches `Host`, and refuses other origins with 403.
const proxy = {
  '/api': { target: api },
  '/vote': { target: api },
  '/socket.io': { target: realtime, ws: true },
};

// What the stack is expected to send with every page, applied to `vite preview` so the built
// app is exercised under it.
const securityHeaders = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  server: { host: '127.0.0.1', port: 5173, strictPort: true, proxy },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true, proxy, headers: securityHeaders },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    // Keeps the built index.html free of inline code, so a strict CSP needs no exceptions.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2020',
  },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
  },
});
