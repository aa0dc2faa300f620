/**
 * Which snapshot a screen shows, and how it is drawn as bars.
 *
 * Snapshots reach a page from several places (the `join` acknowledgement, `poll-results`,
 * `poll-closed`, a re-join after a reconnect) and not always in order. A page shows a
 * snapshot only if it is newer than the one on screen, so counts never move backwards.
 */

import type { Poll, Snapshot } from '../api/types';
import { isEarlier, type PollPhase, SUMMARY_LEAD } from './phase';

/**
 * Whether `incoming` should replace `current`: never one with an earlier status (a poll goes
 * `open` → `closing` → `closed` and never back), else a higher `seq`, or the same `seq` with a
 * later status (the close announcement may repeat the last count).
 */
export function isNewer(current: Snapshot | null, incoming: Snapshot): boolean {
  if (current === null) return true;
  if (isEarlier(incoming.status, current.status)) return false;
  if (incoming.seq > current.seq) return true;
  return incoming.seq === current.seq && isEarlier(current.status, incoming.status);
}

/** The snapshot to show once `incoming` has arrived. */
export function applySnapshot(current: Snapshot | null, incoming: Snapshot): Snapshot {
  return isNewer(current, incoming) ? incoming : (current as Snapshot);
}

/**
 * Whole percentages of `total` for each count. When the counts add up to `total` (one choice
 * per ballot) they are rounded by largest remainder so that they add up to exactly 100;
 * otherwise (several choices per ballot) each is rounded on its own.
 */
export function percentages(counts: readonly number[], total: number): number[] {
  if (total <= 0) return counts.map(() => 0);
  const exact = counts.map((count) => (count * 100) / total);
  const sum = counts.reduce((a, b) => a + b, 0);
  if (sum !== total) return exact.map((value) => Math.round(value));
  const floors = exact.map(Math.floor);
  let missing = 100 - floors.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((value, index) => ({ index, remainder: value - Math.floor(value) }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of byRemainder) {
    if (missing <= 0) break;
    floors[index] = (floors[index] ?? 0) + 1;
    missing -= 1;
  }
  return floors;
}

/** One bar of the chart. */
export interface Bar {
  optionId: string;
  text: string;
  votes: number;
  percent: number;
}

/** The poll's options in their order, with the snapshot's counts (0 where it has none). */
export function toBars(poll: Pick<Poll, 'options'>, snapshot: Snapshot | null): Bar[] {
  const votes = new Map(snapshot?.options.map((o) => [o.optionId, o.votes]) ?? []);
  const counts = poll.options.map((option) => votes.get(option.id) ?? 0);
  const shares = percentages(counts, snapshot?.total ?? 0);
  return poll.options.map((option, index) => ({
    optionId: option.id,
    text: option.text,
    votes: counts[index] ?? 0,
    percent: shares[index] ?? 0,
  }));
}

/**
 * A one-sentence reading of the chart, for screen readers; `phase` is the chart's own
 * (`chartPhase`), so it says "Final result" only over the closed snapshot's counts.
 */
export function describeBars(bars: readonly Bar[], total: number, phase: PollPhase): string {
  const voters = total === 1 ? '1 vote' : `${total} votes`;
  const parts = bars.map((bar) => `${bar.text}: ${bar.votes} (${bar.percent}%)`);
  return `${SUMMARY_LEAD[phase]}, ${voters}. ${parts.join('; ')}.`;
}
