/** The presenter's polls, with what can be done to each: show, close, export, delete. */

import { polls } from '../api/client';
import { errorMessage } from '../api/http';
import type { MyPoll } from '../api/types';
import { STATUS_LABEL } from '../live/phase';
import { pollPath, screenPath } from '../router';
import { account } from '../session';

interface Props {
  items: MyPoll[] | null;
  /** The code of the poll just created, highlighted. */
  fresh: string | null;
  onChanged(): void;
  onProblem(message: string | null): void;
}

/** Saves `blob` as a file named `name` through a temporary link. */
function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function MyPollsList({ items, fresh, onChanged, onProblem }: Props) {
  const act = async (work: (token: string) => Promise<unknown>) => {
    onProblem(null);
    try {
      await account.withToken(work);
      onChanged();
    } catch (err) {
      onProblem(errorMessage(err));
    }
  };
  const close = (poll: MyPoll) => act((token) => polls.close(poll.code, token));
  const remove = (poll: MyPoll) => {
    if (!confirm(`Delete “${poll.question}” and all its votes? This cannot be undone.`)) return;
    void act((token) => polls.remove(poll.code, token));
  };
  const exportCsv = async (poll: MyPoll) => {
    onProblem(null);
    try {
      const csv = await account.withToken((token) => polls.ballotsCsv(poll.code, token));
      saveFile(csv, `pollstream-${poll.code}-ballots.csv`);
    } catch (err) {
      onProblem(errorMessage(err));
    }
  };

  if (items === null) return <p class="loading">Loading your polls…</p>;
  if (items.length === 0) return <p class="hint">No polls yet: create one above.</p>;
  return (
    <ul class="my-polls">
      {items.map((poll) => (
        <li key={poll.id} class={poll.code === fresh ? 'my-poll fresh' : 'my-poll'} data-code={poll.code}>
          <div class="my-poll-head">
            <h3 class="my-poll-question">{poll.question}</h3>
            <p class="my-poll-meta">
              <span class="code-chip">{poll.code}</span>
              <span class={`status status-${poll.status}`} data-status={poll.status}>
                {poll.status === 'closing' ? `${STATUS_LABEL.closing} · counting the last votes…` : STATUS_LABEL[poll.status]}
              </span>
              <span>
                {poll.total} {poll.total === 1 ? 'vote' : 'votes'}
              </span>
              <span>created {new Date(poll.createdAt).toLocaleString()}</span>
            </p>
          </div>
          <div class="actions">
            <a class="button primary" href={screenPath(poll.code)} target="_blank" rel="noopener">
              Open big screen
            </a>
            <a class="button secondary" href={pollPath(poll.code)} target="_blank" rel="noopener">
              Audience page
            </a>
            {poll.status === 'open' && (
              <button type="button" class="secondary" onClick={() => close(poll)}>
                Close poll
              </button>
            )}
            <button type="button" class="secondary" onClick={() => exportCsv(poll)}>
              Export CSV
            </button>
            <button type="button" class="danger" onClick={() => remove(poll)}>
              Delete
            </button>
          </div>
        </li>
      ))}
    </ul>
  );
}
