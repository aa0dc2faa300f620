/** `/console`: the presenter's side. Log in, create polls, run them. */

import { useCallback, useEffect, useState } from 'preact/hooks';

import type { Account } from '../api/account';
import { polls } from '../api/client';
import { errorMessage } from '../api/http';
import type { MyPoll } from '../api/types';
import { navigate } from '../router';
import { account } from '../session';
import { CreatePollForm } from './CreatePollForm';
import { LoginForm } from './LoginForm';
import { MyPollsList } from './MyPollsList';

/** How often the list (and its vote totals) is read again while the console is open. */
const LIST_REFRESH_MS = 15_000;

/**
 * How often while a poll is `closing`: the console has no socket, and the close lasts about
 * 8 s (send deadline, 1 s, one flush), so the final state shows within a second of it.
 */
const CLOSING_REFRESH_MS = 1_000;

export function ConsoleView({ next }: { next: string | null }) {
  const [current, setCurrent] = useState<Account | null>(() => account.current());
  useEffect(() => account.subscribe(setCurrent), []);
  useEffect(() => {
    document.title = 'Presenter console · pollstream';
  }, []);
  // Sent here to log in before voting: go back once logged in.
  useEffect(() => {
    if (current && next) navigate(next, true);
  }, [current, next]);

  return (
    <main id="main" tabIndex={-1} class="page console">
      {current ? <Dashboard who={current} /> : <LoginForm notice={account.endedBecause ?? (next ? 'Log in to vote in this poll.' : null)} />}
    </main>
  );
}

function Dashboard({ who }: { who: Account }) {
  const [items, setItems] = useState<MyPoll[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [fresh, setFresh] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setItems(await account.withToken((token) => polls.mine(token)));
    } catch (err) {
      setProblem(errorMessage(err));
    }
  }, []);
  useEffect(() => {
    void load();
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, LIST_REFRESH_MS);
    return () => clearInterval(timer);
  }, [load]);
  const closing = items?.some((poll) => poll.status === 'closing') ?? false;
  useEffect(() => {
    if (!closing) return undefined;
    const timer = setInterval(() => void load(), CLOSING_REFRESH_MS);
    return () => clearInterval(timer);
  }, [closing, load]);

  return (
    <>
      <div class="console-head">
        <h1>Your polls</h1>
        <p class="who">
          Logged in as <strong>{who.email}</strong>{' '}
          <button type="button" class="secondary" onClick={() => void account.logout()}>
            Log out
          </button>
        </p>
      </div>
      <div class="dashboard">
        <CreatePollForm
          onCreated={(poll) => {
            setFresh(poll.code);
            void load();
          }}
        />
        <section aria-labelledby="list-heading" class="list">
          <div class="list-head">
            <h2 id="list-heading">My polls</h2>
            <button type="button" class="quiet" onClick={() => void load()}>
              Refresh
            </button>
          </div>
          {fresh && (
            <p class="notice" role="status">
              Poll <strong>{fresh}</strong> created.
            </p>
          )}
          {problem && (
            <p class="problem" role="alert">
              {problem}
            </p>
          )}
          <MyPollsList items={items} fresh={fresh} onChanged={() => void load()} onProblem={setProblem} />
        </section>
      </div>
    </>
  );
}
