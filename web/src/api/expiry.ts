/**
 * When tokens expire and when to refresh them. Times are the browser's clock, in
 * milliseconds; an expiry is computed from `expiresIn` when the token arrives, so a skewed
 * clock on the phone does not matter.
 */

/** A token counts as expired this long before it really is, to cover the request's trip. */
export const EXPIRY_SLACK_MS = 10_000;

/** The expiry of a token received at `now` with `expiresIn` seconds to live. */
export function expiresAt(now: number, expiresInSecs: number): number {
  return now + expiresInSecs * 1000;
}

export function isExpired(expiry: number, now: number): boolean {
  return expiry - EXPIRY_SLACK_MS <= now;
}

/**
 * How long to wait before refreshing an access token valid from `issued` to `expiry`: when a
 * fifth of its life is left, but at least 30 s (half its life, for shorter tokens) and at most
 * 2 min before it expires; at once if that moment has passed.
 */
export function refreshDelay(issued: number, expiry: number, now: number): number {
  const lifetime = Math.max(0, expiry - issued);
  const margin = Math.min(Math.max(lifetime * 0.2, Math.min(30_000, lifetime * 0.5)), 120_000, lifetime);
  return Math.max(0, expiry - margin - now);
}
