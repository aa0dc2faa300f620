#!/usr/bin/env node
// Serves the built app (web/dist) with `vite preview`, which proxies /api, /vote and
// /socket.io to the running stack and sends the CSP the stack is to send, then runs
// browser.spec.mjs against it and stops the preview server. Build first: `npm run build`.
//
//   POLLSTREAM_WEB_PORT   port of the preview server (default 4173)
// Other variables go on to browser.spec.mjs (POLLSTREAM_SCREENSHOTS, POLLSTREAM_WEB_FULL, ...).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const port = process.env.POLLSTREAM_WEB_PORT ?? '4173';
const url = `http://127.0.0.1:${port}`;

if (!existsSync(path.join(web, 'dist/index.html'))) {
  console.error('web/dist is missing: run `npm run build` first');
  process.exit(2);
}

if (await fetch(url).then(() => true, () => false)) {
  console.error(`something already answers on ${url}: stop it or set POLLSTREAM_WEB_PORT`);
  process.exit(2);
}

console.log(`Starting vite preview on ${url}`);
const preview = spawn(
  process.execPath,
  [path.join(web, 'node_modules/vite/bin/vite.js'), 'preview', '--port', port, '--strictPort'],
  { cwd: web, stdio: ['ignore', 'inherit', 'inherit'] },
);
const stop = () => {
  if (preview.exitCode === null) preview.kill('SIGTERM');
};
process.on('SIGINT', () => {
  stop();
  process.exit(130);
});

let ready = false;
for (let i = 0; i < 100 && !ready && preview.exitCode === null; i += 1) {
  ready = await fetch(url).then((r) => r.ok, () => false);
  if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
}
if (!ready) {
  console.error(`vite preview did not answer on ${url}`);
  stop();
  process.exit(2);
}

const spec = spawn(process.execPath, [path.join(web, 'tests/browser.spec.mjs'), url], { stdio: 'inherit' });
const code = await new Promise((resolve) => spec.on('exit', (status) => resolve(status ?? 1)));
stop();
process.exit(code);
