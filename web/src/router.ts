/**
 * Client-side routes. The server answers every one of these paths with the same index.html;
 * the path alone decides which view is shown.
 */

import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { name: 'home' }
  | { name: 'poll'; code: string }
  | { name: 'screen'; code: string }
  | { name: 'console'; next: string | null }
  | { name: 'not-found' };

/**
 * Unicode `White_Space`, what Rust's `str::trim` drops: JavaScript's `trim` differs (it drops
 * U+FEFF and keeps U+0085).
 */
const EDGE_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/**
 * A join code as people type it, read as the API reads it (`JoinCode::parse` in
 * `libs/store/src/join_code.rs`): surrounding whitespace dropped, ASCII letters upper-cased,
 * nothing else changed, so a code with a space or a dash inside names no poll here either.
 */
export function normalizeCode(input: string): string {
  return input.replace(EDGE_SPACE, '').replace(/[a-z]+/g, (letters) => letters.toUpperCase());
}

/** Whether `code` can be a join code (ASCII letters and digits only, 4 to 16 of them). */
export function looksLikeCode(code: string): boolean {
  return /^[A-Z0-9]{4,16}$/.test(code);
}

export function parseRoute(pathname: string, search = ''): Route {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/') return { name: 'home' };
  const poll = /^\/p\/([^/]+)$/.exec(path);
  if (poll?.[1]) return { name: 'poll', code: normalizeCode(decodeURIComponent(poll[1])) };
  const screen = /^\/screen\/([^/]+)$/.exec(path);
  if (screen?.[1]) return { name: 'screen', code: normalizeCode(decodeURIComponent(screen[1])) };
  if (path === '/console' || path.startsWith('/console/')) {
    const next = new URLSearchParams(search).get('next');
    // Only a path on this site, never another origin.
    return { name: 'console', next: next && /^\/(?!\/)/.test(next) ? next : null };
  }
  return { name: 'not-found' };
}

/** The page's path for the audience view of a poll; the QR code and links use it. */
export function pollPath(code: string): string {
  return `/p/${encodeURIComponent(code)}`;
}

export function screenPath(code: string): string {
  return `/screen/${encodeURIComponent(code)}`;
}

const ROUTE_CHANGED = 'pollstream:navigate';

/** Goes to `path` without reloading the page. */
export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  window.dispatchEvent(new Event(ROUTE_CHANGED));
  window.scrollTo(0, 0);
  // As a page load would: the next Tab starts at the new content, and screen readers read it.
  requestAnimationFrame(() => document.getElementById('main')?.focus({ preventScroll: true }));
}

/** The current route, updated on navigation and on the browser's back and forward. */
export function useRoute(): Route {
  const read = () => parseRoute(location.pathname, location.search);
  const [route, setRoute] = useState<Route>(read);
  useEffect(() => {
    const update = () => setRoute(read());
    window.addEventListener('popstate', update);
    window.addEventListener(ROUTE_CHANGED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(ROUTE_CHANGED, update);
    };
  }, []);
  return route;
}

/**
 * Turns a click on a same-site link into client-side navigation. Modified clicks (new tab,
 * download) and links with a `target` are left to the browser.
 */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = (event.target as Element | null)?.closest?.('a');
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || parseRoute(url.pathname).name === 'not-found') return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
}
