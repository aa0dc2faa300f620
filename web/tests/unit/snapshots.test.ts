import { describe, expect, it } from 'vitest';

import type { Snapshot } from '../../src/api/types';
import { applySnapshot, describeBars, isNewer, percentages, toBars } from '../../src/live/snapshots';

const snap = (seq: number, votes: number[], status: Snapshot['status'] = 'open'): Snapshot => ({
  pollId: 'p',
  seq,
  total: votes.reduce((a, b) => a + b, 0),
  status,
  options: votes.map((v, i) => ({ optionId: `o${i}`, votes: v })),
});

describe('snapshot order', () => {
  it('takes the first snapshot and any with a higher seq', () => {
    expect(isNewer(null, snap(0, [0, 0]))).toBe(true);
    expect(isNewer(snap(3, [1, 2]), snap(4, [2, 2]))).toBe(true);
  });

  it('never goes back to a lower or equal seq', () => {
    expect(isNewer(snap(5, [3, 2]), snap(4, [2, 2]))).toBe(false);
    expect(isNewer(snap(5, [3, 2]), snap(5, [3, 2]))).toBe(false);
  });

  it('takes the close announced with the same seq as the last count, once', () => {
    expect(isNewer(snap(5, [3, 2]), snap(5, [3, 2], 'closed'))).toBe(true);
    expect(isNewer(snap(5, [3, 2], 'closed'), snap(5, [3, 2], 'closed'))).toBe(false);
    expect(isNewer(snap(5, [3, 2], 'closed'), snap(5, [3, 2], 'open'))).toBe(false);
  });

  it('takes closing then closed, each once, and never goes back', () => {
    expect(isNewer(snap(5, [3, 2]), snap(5, [3, 2], 'closing'))).toBe(true);
    expect(isNewer(snap(5, [3, 2], 'closing'), snap(5, [3, 2], 'closing'))).toBe(false);
    expect(isNewer(snap(5, [3, 2], 'closing'), snap(6, [4, 2], 'closing'))).toBe(true);
    expect(isNewer(snap(6, [4, 2], 'closing'), snap(6, [4, 2], 'closed'))).toBe(true);
    expect(isNewer(snap(6, [4, 2], 'closing'), snap(6, [4, 2], 'open'))).toBe(false);
    expect(isNewer(snap(7, [4, 3], 'closed'), snap(7, [4, 3], 'closing'))).toBe(false);
    expect(isNewer(snap(7, [4, 3], 'closed'), snap(7, [4, 3], 'open'))).toBe(false);
    // A late snapshot with an earlier status is dropped whatever its seq.
    expect(isNewer(snap(7, [4, 3], 'closed'), snap(8, [5, 3], 'closing'))).toBe(false);
    expect(isNewer(snap(6, [4, 2], 'closing'), snap(9, [5, 3], 'open'))).toBe(false);
  });

  it('ends on the final count through a close arriving out of order', () => {
    const arrivals = [
      snap(3, [1, 1]),
      snap(4, [2, 1], 'closing'),
      snap(3, [1, 1]),
      snap(6, [3, 2], 'closed'),
      snap(5, [3, 1], 'closing'),
      snap(6, [3, 2], 'closing'),
      snap(6, [3, 2], 'open'),
    ];
    const shown: string[] = [];
    let current: Snapshot | null = null;
    for (const incoming of arrivals) {
      current = applySnapshot(current, incoming);
      shown.push(`${current.seq}:${current.status}`);
    }
    expect(shown).toEqual(['3:open', '4:closing', '4:closing', '6:closed', '6:closed', '6:closed', '6:closed']);
    expect(current?.total).toBe(5);
  });

  it('shows the newest of snapshots arriving out of order', () => {
    const arrivals = [snap(2, [1, 1]), snap(4, [2, 2]), snap(3, [2, 1]), snap(1, [1, 0]), snap(4, [2, 2], 'closed')];
    const shown: number[] = [];
    let current: Snapshot | null = null;
    for (const incoming of arrivals) {
      current = applySnapshot(current, incoming);
      shown.push(current.seq);
    }
    expect(shown).toEqual([2, 4, 4, 4, 4]);
    expect(current?.status).toBe('closed');
    expect(current?.total).toBe(4);
  });
});

describe('percentages', () => {
  it('are 0 before any vote', () => {
    expect(percentages([0, 0, 0], 0)).toEqual([0, 0, 0]);
  });

  it('add up to 100 for one choice per ballot', () => {
    expect(percentages([1, 1, 1], 3)).toEqual([34, 33, 33]);
    expect(percentages([2, 1], 3)).toEqual([67, 33]);
    expect(percentages([1, 0, 0, 6], 7)).toEqual([14, 0, 0, 86]);
    for (const counts of [[7, 7, 7, 2], [1, 1, 1, 1, 1, 1], [999, 1, 0]]) {
      const total = counts.reduce((a, b) => a + b, 0);
      expect(percentages(counts, total).reduce((a, b) => a + b, 0)).toBe(100);
    }
  });

  it('are shares of voters for several choices per ballot', () => {
    // Three voters, each chose two options.
    expect(percentages([3, 2, 1], 3)).toEqual([100, 67, 33]);
  });
});

describe('bars', () => {
  const poll = { options: [{ id: 'o0', text: 'Tabs' }, { id: 'o1', text: 'Spaces' }, { id: 'o2', text: 'Both' }] };

  it('follow the poll\'s order and count 0 for options missing from the snapshot', () => {
    const bars = toBars(poll, { ...snap(1, [3, 1]), total: 4 });
    expect(bars.map((b) => [b.text, b.votes, b.percent])).toEqual([
      ['Tabs', 3, 75],
      ['Spaces', 1, 25],
      ['Both', 0, 0],
    ]);
  });

  it('are all empty without a snapshot', () => {
    expect(toBars(poll, null).map((b) => b.votes)).toEqual([0, 0, 0]);
  });

  it('read as one sentence', () => {
    const bars = toBars(poll, snap(1, [1, 0, 0]));
    expect(describeBars(bars, 1, 'open')).toBe('Live result, 1 vote. Tabs: 1 (100%); Spaces: 0 (0%); Both: 0 (0%).');
    expect(describeBars(bars, 1, 'closed')).toMatch(/^Final result/);
  });

  it('do not read as final while the last votes are counted', () => {
    const bars = toBars(poll, snap(1, [1, 0, 0], 'closing'));
    const text = describeBars(bars, 1, 'closing');
    expect(text).toBe('Voting closed, counting the last votes, 1 vote. Tabs: 1 (100%); Spaces: 0 (0%); Both: 0 (0%).');
    expect(text).not.toMatch(/final/i);
  });
});
