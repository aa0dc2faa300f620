/**
 * `/p/{CODE}`: one poll for the audience. Read the question, vote, see the vote received and
 * then counted, and the results whenever the poll's visibility allows.
 */

import { useCallback, useEffect, useState } from 'preact/hooks';

import { polls, votes } from '../api/client';
import { ApiError, errorMessage } from '../api/http';
import type { MyVote, Poll } from '../api/types';
import { usePollLive } from '../live/usePollLive';
import { choiceRule } from '../poll/choices';
import { live, voter } from '../session';
import { BallotForm } from './BallotForm';
import { LinkStatus } from './LinkStatus';
import { ResultsChart } from './ResultsChart';
import { useClosesAt } from './useClosesAt';

/** Where this voter's ballot stands, as far as this page knows. */
type Ballot =
  | { state: 'none' }
  | { state: 'sending' }
  /** Cast from this page: accepted (`pending`) or already counted. */
  | { state: 'cast'; vote: MyVote }
  /** Found on arrival, or the API said `already_voted`. */
  | { state: 'already'; vote: MyVote | null };

/** How often to ask whether a received vote is counted: quickly at first, then less. */
function countedCheckDelay(attempt: number): number {
  return attempt < 10 ? 1000 : 3000;
}
const COUNTED_CHECKS = 70;

export function AudienceView({ code }: { code: string }) {
  const [poll, setPoll] = useState<Poll | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [ballot, setBallot] = useState<Ballot>({ state: 'none' });
  const [problem, setProblem] = useState<string | null>(null);
  const [refusedAsGuest, setRefusedAsGuest] = useState(false);
  const [closedByApi, setClosedByApi] = useState(false);

  const joinToken = useCallback(() => voter.existingToken(), []);
  const liveState = usePollLive(poll?.id ?? null, joinToken);
  const timeUp = useClosesAt(poll?.closesAt ?? null);
  const closed = poll?.status === 'closed' || liveState.closed || closedByApi || timeUp;
  const needsAccount = voter.kind() === 'guest' && (poll?.allowGuests === false || refusedAsGuest);

  useEffect(() => {
    document.title = poll ? `${poll.question} · pollstream` : `Poll ${code} · pollstream`;
  }, [poll, code]);

  // The poll, then whether this browser's voter already has a ballot in it.
  useEffect(() => {
    const abort = new AbortController();
    setPoll(null);
    setLoadError(null);
    setBallot({ state: 'none' });
    polls
      .get(code, abort.signal)
      .then(async (loaded) => {
        setPoll(loaded);
        const token = await voter.existingToken();
        if (!token) return;
        const mine = await votes.mine(code, token).catch(() => null);
        if (mine && mine.status !== 'none' && !abort.signal.aborted) setBallot({ state: 'already', vote: mine });
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setLoadError(err instanceof ApiError ? err : new ApiError(0, 'unknown', errorMessage(err)));
      });
    return () => abort.abort();
  }, [code]);

  // A received vote: ask until it is counted. Any new snapshot is a good moment to ask.
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
    if (pending && liveState.arrivals > 0) void checkCounted();
  }, [liveState.arrivals]);

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

  if (loadError) {
    return (
      <main id="main" tabIndex={-1} class="page narrow">
        <h1>{loadError.code === 'poll_not_found' ? 'No such poll' : 'The poll cannot be shown'}</h1>
        <p class="problem" role="alert">
          {loadError.code === 'poll_not_found' ? `No poll has the code ${code}.` : loadError.message}
        </p>
        <p>
          <a href="/">Try another code</a>
        </p>
      </main>
    );
  }
  if (!poll) {
    return (
      <main id="main" tabIndex={-1} class="page narrow" aria-busy="true">
        <p class="loading">Loading poll {code}…</p>
      </main>
    );
  }

  const vote = ballot.state === 'cast' || ballot.state === 'already' ? ballot.vote : null;
  const chosenIds = vote?.optionIds ?? [];
  const chosenTexts = poll.options.filter((o) => chosenIds.includes(o.id)).map((o) => o.text);
  const canVote = !closed && (ballot.state === 'none' || ballot.state === 'sending') && !needsAccount;

  return (
    <main id="main" tabIndex={-1} class="page narrow audience" data-poll-id={poll.id}>
      <p class="poll-meta">
        <span class="code-chip">{poll.code}</span>
        <span class={closed ? 'status status-closed' : 'status status-open'} data-status={closed ? 'closed' : 'open'}>
          {closed ? 'Closed' : 'Open'}
        </span>
        {!closed && poll.closesAt && <span class="closes">closes at {new Date(poll.closesAt).toLocaleTimeString()}</span>}
      </p>
      <h1 class="question">{poll.question}</h1>
      <LinkStatus link={liveState.link} />

      {closed && (
        <p class="notice notice-closed" role="status" data-testid="closed-notice">
          This poll is closed.
        </p>
      )}

      {needsAccount && (
        <div class="notice notice-account" role="alert" data-testid="needs-account">
          <p>This poll needs an account: guests cannot vote in it.</p>
          <p>
            <a class="button" href={`/console?next=${encodeURIComponent(`/p/${poll.code}`)}`}>
              Log in or create an account
            </a>
          </p>
        </div>
      )}

      {canVote && (
        <BallotForm
          poll={poll}
          rule={choiceRule(poll)}
          sending={ballot.state === 'sending'}
          problem={problem}
          onSubmit={submit}
          votingAs={voter.kind()}
        />
      )}
      {!canVote && problem && (
        <p class="problem" role="alert">
          {problem}
        </p>
      )}

      {vote !== null || ballot.state === 'already' ? (
        <section class="notice notice-vote" role="status" aria-live="polite" data-testid="vote-status" data-vote-status={vote?.status ?? 'unknown'}>
          <p class="vote-headline">
            {ballot.state === 'already'
              ? 'You already voted in this poll.'
              : vote?.status === 'counted'
                ? 'Your vote is counted.'
                : 'Vote received. Counting…'}
            {ballot.state === 'already' && vote?.status === 'pending' && ' It is being counted.'}
          </p>
          {chosenTexts.length > 0 && (
            <p class="vote-choice">
              Your choice: <strong>{chosenTexts.join(', ')}</strong>
            </p>
          )}
          {ballot.state === 'cast' && vote?.status === 'counted' && <p class="vote-steps">Received ✓ Counted ✓</p>}
        </section>
      ) : null}

      <section class="results" aria-labelledby="results-heading">
        <h2 id="results-heading">{closed ? 'Final result' : 'Live results'}</h2>
        {liveState.snapshot ? (
          <ResultsChart poll={poll} snapshot={liveState.snapshot} chosen={chosenIds} />
        ) : (
          <p class="hint" data-testid="results-hidden">
            {hiddenReason(poll, liveState.hidden !== null, vote !== null, closed)}
          </p>
        )}
        {liveState.error && <p class="problem">{liveState.error.message}</p>}
      </section>
    </main>
  );
}

function hiddenReason(poll: Poll, hidden: boolean, voted: boolean, closed: boolean): string {
  if (!hidden) return 'Loading results…';
  switch (poll.resultsVisibility) {
    case 'after_vote':
      return voted ? 'Results appear here as soon as your vote is counted.' : 'Results appear here once you have voted.';
    case 'after_close':
      return closed ? 'Results appear here in a moment.' : 'Results appear here when the poll closes.';
    case 'owner_only':
      return 'Only the presenter sees the results of this poll.';
    default:
      return 'Results are not available.';
  }
}
