/**
 * `/p/{CODE}`: one poll for the audience. Read the question, vote, see the vote received and
 * then counted, and the results whenever the poll's visibility allows.
 */

import { useCallback, useEffect, useState } from 'preact/hooks';

import { polls } from '../api/client';
import { ApiError, errorMessage } from '../api/http';
import type { Poll } from '../api/types';
import { useBallot } from '../hooks/useBallot';
import { useClosesAt } from '../hooks/useClosesAt';
import { usePollLive } from '../hooks/usePollLive';
import { pollPhase, RESULTS_HEADING, STATUS_LABEL } from '../live/phase';
import { choiceRule } from '../poll/choices';
import { voter } from '../session';
import { BallotForm } from './BallotForm';
import { LinkStatus } from './LinkStatus';
import { ResultsChart } from './ResultsChart';

export function AudienceView({ code }: { code: string }) {
  const [poll, setPoll] = useState<Poll | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);

  const joinToken = useCallback(() => voter.existingToken(), []);
  const liveState = usePollLive(poll?.id ?? null, joinToken);
  const { ballot, vote, problem, refusedAsGuest, closedByApi, submit } = useBallot(code, poll, liveState.arrivals);
  const timeUp = useClosesAt(poll?.closesAt ?? null);
  const phase = pollPhase({ polled: poll?.status, snapshot: liveState.status, stopped: closedByApi || timeUp });
  // No vote is taken once closing; the tally is final only once `closed`.
  const closed = phase !== 'open';
  const needsAccount = voter.kind() === 'guest' && (poll?.allowGuests === false || refusedAsGuest);

  useEffect(() => {
    document.title = poll ? `${poll.question} · pollstream` : `Poll ${code} · pollstream`;
  }, [poll, code]);

  useEffect(() => {
    const abort = new AbortController();
    setPoll(null);
    setLoadError(null);
    polls
      .get(code, abort.signal)
      .then((loaded) => setPoll(loaded))
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setLoadError(err instanceof ApiError ? err : new ApiError(0, 'unknown', errorMessage(err)));
      });
    return () => abort.abort();
  }, [code]);

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

  const chosenIds = vote?.optionIds ?? [];
  const chosenTexts = poll.options.filter((o) => chosenIds.includes(o.id)).map((o) => o.text);
  const canVote = !closed && (ballot.state === 'none' || ballot.state === 'sending') && !needsAccount;

  return (
    <main id="main" tabIndex={-1} class="page narrow audience" data-poll-id={poll.id}>
      <p class="poll-meta">
        <span class="code-chip">{poll.code}</span>
        <span class={`status status-${phase}`} data-status={phase}>
          {STATUS_LABEL[phase]}
        </span>
        {!closed && poll.closesAt && <span class="closes">closes at {new Date(poll.closesAt).toLocaleTimeString()}</span>}
      </p>
      <h1 class="question">{poll.question}</h1>
      <LinkStatus link={liveState.link} />

      {closed && (
        <p class="notice notice-closed" role="status" data-testid="closed-notice" data-status={phase}>
          {phase === 'closed' ? 'This poll is closed.' : 'Voting is closed. Counting the last votes…'}
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
        <h2 id="results-heading">{RESULTS_HEADING[phase]}</h2>
        {liveState.snapshot ? (
          <ResultsChart poll={poll} snapshot={liveState.snapshot} chosen={chosenIds} phase={phase} />
        ) : (
          <p class="hint" data-testid="results-hidden">
            {hiddenReason(poll, liveState.hidden !== null, vote !== null, phase === 'closed')}
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
      return closed
        ? 'Results appear here in a moment.'
        : 'Results appear here when the poll closes and the last votes are counted.';
    case 'owner_only':
      return 'Only the presenter sees the results of this poll.';
    default:
      return 'Results are not available.';
  }
}
