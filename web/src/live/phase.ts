/**
 * Where a poll is in its close, as a page knows it, and how each page words it.
 *
 * A close runs `open` → `closing` → `closed`. While `closing` no vote is taken but votes
 * accepted just before are still being counted (the send deadline, 1 s and one aggregator
 * flush: about 8 s), so the counts still move; only `closed` carries the final tally. A page
 * therefore says "final" only once a snapshot or poll with status `closed` is in hand, and
 * says "counting the last votes" from the moment it knows voting stopped: the server said
 * `closing`, a vote was refused as closed, or `closesAt` passed on this browser's clock.
 */

import type { PollStatus } from '../api/types';

/** What a page knows about a poll's close. */
export type PollPhase = PollStatus;

/** The order of the statuses: a poll never goes back to an earlier one. */
const RANK: Record<PollStatus, number> = { open: 0, closing: 1, closed: 2 };

/** Whether `status` comes before `than` in `open` → `closing` → `closed`. */
export function isEarlier(status: PollStatus, than: PollStatus): boolean {
  return RANK[status] < RANK[than];
}

/** The later of two statuses. */
export function laterOf(a: PollStatus, b: PollStatus): PollStatus {
  return isEarlier(a, b) ? b : a;
}

/** What a page knows, each part from its own source. */
export interface PhaseSignals {
  /** The poll's status as REST last answered it (`GET /polls/{code}`, `POST …/close`). */
  polled?: PollStatus | null;
  /** The status of the snapshot on screen, if any. */
  snapshot?: PollStatus | null;
  /** The status of a hidden-results answer (the viewer may not see the counts). */
  hidden?: PollStatus | null;
  /** Voting is known to have stopped without the server's status (`closesAt` passed, a vote refused as closed). */
  stopped?: boolean;
}

/** The phase to show: the latest any source says, `closing` at least once voting stopped. */
export function pollPhase(signals: PhaseSignals): PollPhase {
  let phase: PollPhase = signals.stopped ? 'closing' : 'open';
  for (const status of [signals.polled, signals.snapshot, signals.hidden]) {
    if (status) phase = laterOf(phase, status);
  }
  return phase;
}

/**
 * The phase a chart of `snapshot`'s counts may claim: `closed` (final) only when those very
 * counts are the closed snapshot's, else `closing` once the page knows voting stopped.
 */
export function chartPhase(page: PollPhase, snapshot: PollStatus | null): PollPhase {
  if (snapshot === 'closed') return 'closed';
  return page === 'open' ? 'open' : 'closing';
}

/** The big screen's state line. */
export const SCREEN_STATE: Record<PollPhase, string> = {
  open: 'Voting open',
  closing: 'Voting closed · counting the last votes…',
  closed: 'Voting closed · final result',
};

/** The short status chip (audience page, the presenter's list). */
export const STATUS_LABEL: Record<PollPhase, string> = {
  open: 'Open',
  closing: 'Closing',
  closed: 'Closed',
};

/** The heading over the audience page's chart. */
export const RESULTS_HEADING: Record<PollPhase, string> = {
  open: 'Live results',
  closing: 'Counting the last votes…',
  closed: 'Final result',
};

/** What the chart's total line adds after the count. */
export const TOTAL_SUFFIX: Record<PollPhase, string> = {
  open: '',
  closing: ' · counting the last votes…',
  closed: ' · final result',
};

/** How the accessible summary of the chart begins. */
export const SUMMARY_LEAD: Record<PollPhase, string> = {
  open: 'Live result',
  closing: 'Voting closed, counting the last votes',
  closed: 'Final result',
};
