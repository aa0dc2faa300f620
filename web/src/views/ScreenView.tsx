/**
 * `/screen/{CODE}`: the big screen behind the presenter. Question, how to join (URL, code,
 * QR code), the live chart, how many are watching, and the final state once closed. Joined
 * with the owner's token when the presenter is logged in here, so owner-only results show.
 */

import { useCallback, useEffect, useState } from 'preact/hooks';

import { polls } from '../api/client';
import { ApiError, errorMessage } from '../api/http';
import type { Poll, ResultsVisibility } from '../api/types';
import { useClosesAt } from '../hooks/useClosesAt';
import { usePollLive } from '../hooks/usePollLive';
import { pollPhase, SCREEN_STATE } from '../live/phase';
import { pollPath } from '../router';
import { account } from '../session';
import { LinkStatus } from './LinkStatus';
import { QrCode } from './QrCode';
import { ResultsChart } from './ResultsChart';

const HIDDEN_BECAUSE: Record<ResultsVisibility, string> = {
  always: 'The results are hidden.',
  after_vote: 'Each voter sees the results once their vote is counted.',
  after_close: 'The results are hidden until the poll closes.',
  owner_only: 'Only the poll’s owner sees the results.',
};

export function ScreenView({ code }: { code: string }) {
  const [poll, setPoll] = useState<Poll | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const ownerToken = useCallback(() => (account.current() ? account.accessToken().catch(() => null) : Promise.resolve(null)), []);
  const liveState = usePollLive(poll?.id ?? null, ownerToken);
  const timeUp = useClosesAt(poll?.closesAt ?? null);
  const phase = pollPhase({ polled: poll?.status, snapshot: liveState.status, stopped: timeUp });
  // Voting has stopped in both `closing` and `closed`; only `closed` is the final tally.
  const closed = phase !== 'open';

  useEffect(() => {
    document.documentElement.classList.add('big-screen');
    return () => document.documentElement.classList.remove('big-screen');
  }, []);
  useEffect(() => {
    document.title = poll ? `${poll.code}: ${poll.question}` : `Poll ${code}`;
  }, [poll, code]);
  useEffect(() => {
    const abort = new AbortController();
    setPoll(null);
    setLoadError(null);
    polls
      .get(code, abort.signal)
      .then(setPoll)
      .catch((err: unknown) => {
        if (abort.signal.aborted) return;
        setLoadError(err instanceof ApiError && err.code === 'poll_not_found' ? `No poll has the code ${code}.` : errorMessage(err));
      });
    return () => abort.abort();
  }, [code]);

  if (loadError) {
    return (
      <main id="main" tabIndex={-1} class="screen">
        <h1 class="screen-question">{loadError}</h1>
      </main>
    );
  }
  if (!poll) {
    return (
      <main id="main" tabIndex={-1} class="screen" aria-busy="true">
        <p class="loading">Loading poll {code}…</p>
      </main>
    );
  }

  const joinUrl = `${location.origin}${pollPath(poll.code)}`;
  return (
    <main id="main" tabIndex={-1} class={closed ? `screen screen-closed screen-${phase}` : 'screen'} data-poll-id={poll.id}>
      <section class="screen-main" aria-labelledby="screen-question">
        <p class="screen-state" data-status={phase} role="status">
          {SCREEN_STATE[phase]}
        </p>
        <h1 id="screen-question" class="screen-question">
          {poll.question}
        </h1>
        {liveState.snapshot ? (
          <ResultsChart poll={poll} snapshot={liveState.snapshot} announce={closed} size="large" phase={phase} />
        ) : liveState.hidden ? (
          <p class="screen-hidden" data-testid="results-hidden">
            {HIDDEN_BECAUSE[poll.resultsVisibility]} Log in as the poll’s owner in the console of this browser to show
            them here.
          </p>
        ) : (
          <p class="loading">Waiting for results…</p>
        )}
        {liveState.error && <p class="problem">{liveState.error.message}</p>}
      </section>
      <aside class="screen-join" aria-label="How to join">
        <p class="join-label">Join at</p>
        <p class="join-url" data-testid="join-url">
          {location.host}
          <wbr />
          {pollPath(poll.code)}
        </p>
        <p class="join-label">or enter the code</p>
        <p class="join-code" data-testid="join-code">
          {poll.code}
        </p>
        <QrCode text={joinUrl} />
        <p class="viewers">
          <span class="viewers-number" data-testid="viewers">
            {liveState.viewers ?? '—'}
          </span>{' '}
          watching live
        </p>
        <LinkStatus link={liveState.link} />
      </aside>
    </main>
  );
}
