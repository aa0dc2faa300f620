import { describe, expect, it } from 'vitest';

import { realtimeUrl } from '../../src/live/connection';
import { looksLikeCode, normalizeCode, parseRoute, pollPath } from '../../src/router';

describe('routes', () => {
  it('map paths to views', () => {
    expect(parseRoute('/')).toEqual({ name: 'home' });
    expect(parseRoute('/p/K7QM2P')).toEqual({ name: 'poll', code: 'K7QM2P' });
    expect(parseRoute('/p/k7qm2p/')).toEqual({ name: 'poll', code: 'K7QM2P' });
    expect(parseRoute('/screen/K7QM2P')).toEqual({ name: 'screen', code: 'K7QM2P' });
    expect(parseRoute('/console')).toEqual({ name: 'console', next: null });
    expect(parseRoute('/nope')).toEqual({ name: 'not-found' });
    expect(parseRoute('/p/')).toEqual({ name: 'not-found' });
  });

  it('send back only to a path of this site after logging in', () => {
    expect(parseRoute('/console', '?next=%2Fp%2FK7QM2P')).toEqual({ name: 'console', next: '/p/K7QM2P' });
    expect(parseRoute('/console', '?next=https://evil.example/')).toEqual({ name: 'console', next: null });
    expect(parseRoute('/console', '?next=//evil.example/')).toEqual({ name: 'console', next: null });
  });

  it('accept codes as people type them, as the API reads them', () => {
    expect(normalizeCode(' k7qm2p ')).toBe('K7QM2P');
    // The API only trims: a space or a dash inside is part of what was typed, and no code has one.
    expect(normalizeCode(' k7q m2p ')).toBe('K7Q M2P');
    expect(looksLikeCode(normalizeCode(' k7q m2p '))).toBe(false);
    expect(normalizeCode('k7q-m2p')).toBe('K7Q-M2P');
    expect(looksLikeCode(normalizeCode('k7q-m2p'))).toBe(false);
    expect(looksLikeCode('K7QM2P')).toBe(true);
    expect(looksLikeCode('K7')).toBe(false);
    expect(looksLikeCode('K7QM2P!')).toBe(false);
    expect(pollPath('K7QM2P')).toBe('/p/K7QM2P');
  });
});

describe('realtime URL', () => {
  const origin = 'https://polls.example.org';

  it('is the page origin unless the server named another', () => {
    expect(realtimeUrl(null, origin)).toBe(origin);
    expect(realtimeUrl('', origin)).toBe(origin);
    expect(realtimeUrl('   ', origin)).toBe(origin);
    expect(realtimeUrl('https://rt.example.org:8443/', origin)).toBe('https://rt.example.org:8443');
  });

  it('ignores anything that is not an http(s) URL', () => {
    expect(realtimeUrl('javascript:alert(1)', origin)).toBe(origin);
    expect(realtimeUrl('http://[bad', origin)).toBe(origin);
  });
});
