/**
 * Where this voter's ballot in one poll stands, and sending it: the vote found on arrival,
 * a vote cast from this page until it is counted, and what the API said when it refused one.
 */

import { useCallback, useEffect, useState } from 'preact/hooks';

import { votes } from '../api/client';
import { ApiError, errorMessage } from '../api/http';
import type { MyVote, Poll } from '../api/types';
import { live, voter } from '../session';

/** Where this voter's ballot stands, as far as this page knows. */
export type Ballot =
  | { state: 'none' }
  | { state: 'sending' }
  /** Cast from this page: accepted (`pending`) or already counted. */
  | { state: 'cast'; vote: MyVote }
  /** Found on arrival, or the API said `already_voted`. */
  | { state: 'already'; vote: MyVote | null };

export interface BallotState {
  ballot: Ballot;
  /** The vote this voter has in the poll, once known. */
  vote: MyVote | null;
  /** Why the last vote was not taken, in words for the voter. */
  problem: string | null;
  /** The API refused a guest's vote: the poll needs an account. */
  refusedAsGuest: boolean;
  /** The API answered `poll_closed`. */
  closedByApi: boolean;
  submit: (optionIds: string[]) => Promise<void>;
}

/** How often to ask whether a received vote is counted: quickly at first, then less. */
function countedCheckDelay(attempt: number): number {
  return attempt < 10 ? 1000 : 3000;
}
const COUNTED_CHECKS = 70;

/**
 * The ballot of this browser's voter in the poll `code`, once `poll` is loaded. `arrivals`
 * counts the live snapshots that arrived: each is a good moment to ask whether a received
 * vote is counted.
 */
export function useBallot(code: string, poll: Poll | null, arrivals: number): BallotState {
  const [ballot, setBallot] = useState<Ballot>({ state: 'none' });
  const [problem, setProblem] = useState<string | null>(null);
  const [refusedAsGuest, setRefusedAsGuest] = useState(false);
  const [closedByApi, setClosedByApi] = useState(false);
  const pollId = poll?.id ?? null;

  // Whether this browser's voter already has a ballot in the poll.
  useEffect(() => {
    setBallot({ state: 'none' });
    if (pollId === null) return undefined;
    let gone = false;
    void (async () => {
      const token = await voter.existingToken();
      if (!token) return;
      const mine = await votes.mine(code, token).catch(() => null);
      if (mine && mine.status !== 'none' && !gone) setBallot({ state: 'already', vote: mine });
    })();
    return () => {
      gone = true;
    };
  }, [code, pollId]);

  // A received vote: ask until it is counted.
  const pending = (ballot.state === 'cast' || ballot.state === 'already') && ballot.vote?.status === 'pending';
  const [checks, setChecks] = useState(0);
  const checkCounted = useCallback(async () => {
    const mine = await voter.withToken((token) => votes.mine(code, token)).catch(() => null);
    if (mine?.status === 'counted') {
      setBallot((b) => (b.state === 'cast' || b.state === 'already' ? { ...b, vote: mine } : b));
    }
  }, [code]);
  useEffect(() => {
    if (!pending || checks >= COUNTED_CHECKS) return undefined;
    const timer = setTimeout(() => {
      void checkCounted().finally(() => setChecks((n) => n + 1));
    }, countedCheckDelay(checks));
    return () => clearTimeout(timer);
  }, [pending, checks, checkCounted]);
  useEffect(() => {
    if (pending && arrivals > 0) void checkCounted();
  }, [arrivals]);

  const submit = async (optionIds: string[]) => {
    if (!poll) return;
    setProblem(null);
    setBallot({ state: 'sending' });
    try {
      await voter.withToken((token) => votes.cast(code, optionIds, token));
      setBallot({
        state: 'cast',
        vote: { status: 'pending', voteId: null, optionIds, castAt: null, countedAt: null },
      });
      setChecks(0);
      // Join again with the voter's token, so results shown "after your vote" reach this page.
      live().rejoin(poll.id);
    } catch (err) {
      setBallot({ state: 'none' });
      if (!(err instanceof ApiError)) {
        setProblem(errorMessage(err));
        return;
      }
      if (err.code === 'already_voted') {
        const mine = await voter.withToken((token) => votes.mine(code, token)).catch(() => null);
        setBallot({ state: 'already', vote: mine });
      } else if (err.code === 'poll_closed') {
        setClosedByApi(true);
        setProblem(err.message);
      } else if (err.code === 'guests_not_allowed') {
        setRefusedAsGuest(true);
      } else if (err.status === 429 || err.status === 503) {
        const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : ' Try again in a moment.';
        setProblem(err.message.replace(/\.?$/, '.') + wait);
      } else {
        setProblem(err.message);
      }
    }
  };

  const vote = ballot.state === 'cast' || ballot.state === 'already' ? ballot.vote : null;
  return { ballot, vote, problem, refusedAsGuest, closedByApi, submit };
}
