/** A view's live state of one poll: the newest snapshot, hidden or not, viewers, the link. */

import { useEffect, useState } from 'preact/hooks';

import type { ErrorBody, HiddenResults, PollStatus, Snapshot } from '../api/types';
import type { LinkState, TokenSource } from '../live/connection';
import { laterOf } from '../live/phase';
import { applySnapshot } from '../live/snapshots';
import { live } from '../session';

export interface PollLive {
  snapshot: Snapshot | null;
  /** Set while the results are hidden from this viewer. */
  hidden: HiddenResults | null;
  /** Screens joined to the poll, `null` until the server first says. */
  viewers: number | null;
  /** The latest status the socket told (a snapshot or a hidden answer); `closed` only with the final tally. */
  status: PollStatus;
  link: LinkState;
  error: ErrorBody | null;
  /** Counts how many snapshots arrived, accepted or not; views use it to re-check things. */
  arrivals: number;
}

export function usePollLive(pollId: string | null, token: TokenSource): PollLive {
  const [state, setState] = useState<PollLive>(() => ({
    snapshot: null,
    hidden: null,
    viewers: null,
    status: 'open',
    link: live().state,
    error: null,
    arrivals: 0,
  }));

  useEffect(() => live().onState((link) => setState((s) => ({ ...s, link }))), []);

  useEffect(() => {
    if (!pollId) return undefined;
    return live().watch(pollId, token, {
      snapshot: (incoming) =>
        setState((s) => {
          const snapshot = applySnapshot(s.snapshot, incoming);
          return {
            ...s,
            snapshot,
            hidden: null,
            status: laterOf(s.status, snapshot.status),
            error: null,
            arrivals: s.arrivals + 1,
          };
        }),
      // Counts once shown stay shown; a hidden answer only matters to a viewer without any.
      hidden: (info) =>
        setState((s) => ({
          ...s,
          hidden: s.snapshot ? null : info,
          status: laterOf(s.status, info.status),
          error: null,
        })),
      presence: (viewers) => setState((s) => ({ ...s, viewers })),
      failed: (error) => setState((s) => ({ ...s, error })),
    });
    // The token source is read at every join; a new function alone needs no new room.
  }, [pollId]);

  return state;
}
