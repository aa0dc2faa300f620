import { describe, expect, it } from 'vitest';

import { EXPIRY_SLACK_MS, expiresAt, isExpired, refreshDelay } from '../../src/api/expiry';

const MIN = 60_000;

describe('refresh scheduling', () => {
  it('refreshes a 15-minute token 2 minutes before it expires', () => {
    const issued = 1_000_000;
    const expiry = expiresAt(issued, 900);
    expect(refreshDelay(issued, expiry, issued)).toBe(13 * MIN);
    expect(refreshDelay(issued, expiry, issued + 5 * MIN)).toBe(8 * MIN);
  });

  it('refreshes a short token with room to spare', () => {
    expect(refreshDelay(0, 60_000, 0)).toBe(30_000);
    expect(refreshDelay(0, 10_000, 0)).toBe(5_000);
    expect(refreshDelay(0, 5 * MIN, 0)).toBe(4 * MIN);
  });

  it('refreshes at once when the moment has passed, or the token expired', () => {
    expect(refreshDelay(0, 900_000, 890_000)).toBe(0);
    expect(refreshDelay(0, 900_000, 2_000_000)).toBe(0);
  });

  it('never waits longer than the token lives', () => {
    for (const lifetime of [1_000, 30_000, 3_600_000, 86_400_000]) {
      const delay = refreshDelay(0, lifetime, 0);
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThan(lifetime);
    }
  });
});

describe('expiry', () => {
  it('counts a token as expired a little early', () => {
    const expiry = expiresAt(0, 60);
    expect(isExpired(expiry, 0)).toBe(false);
    expect(isExpired(expiry, expiry - EXPIRY_SLACK_MS - 1)).toBe(false);
    expect(isExpired(expiry, expiry - EXPIRY_SLACK_MS)).toBe(true);
    expect(isExpired(expiry, expiry + 1)).toBe(true);
  });
});
