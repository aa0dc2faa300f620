/** The presenter's "new poll" form, with every option the API takes. */

import { useState } from 'preact/hooks';

import { polls } from '../api/client';
import { errorMessage } from '../api/http';
import type { Poll, PollKind, ResultsVisibility } from '../api/types';
import { MAX_OPTIONS, type NewPollForm, emptyForm, toNewPoll } from '../poll/newPoll';
import { MAX_OPTION_CHARS, MAX_QUESTION_CHARS } from '../poll/text';
import { account } from '../session';
import { CharacterCount } from './CharacterCount';

const VISIBILITY: { value: ResultsVisibility; label: string }[] = [
  { value: 'always', label: 'Everyone, all the time' },
  { value: 'after_vote', label: 'Each voter once their vote is counted' },
  { value: 'after_close', label: 'Everyone once the poll is closed' },
  { value: 'owner_only', label: 'Only me (and my big screen)' },
];

/**
 * An option's counter appears from this many characters: most options are a few words, and
 * the limit is what the server counts (the fields have no `maxLength`, which counts UTF-16
 * units and would cut a row of flags at 14).
 */
const OPTION_COUNT_FROM = 150;

export function CreatePollForm({ onCreated }: { onCreated(poll: Poll): void }) {
  const [form, setForm] = useState<NewPollForm>(emptyForm);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const set = <K extends keyof NewPollForm>(key: K, value: NewPollForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const setOption = (index: number, text: string) =>
    setForm((f) => ({ ...f, options: f.options.map((o, i) => (i === index ? text : o)) }));

  const submit = async (event: Event) => {
    event.preventDefault();
    const built = toNewPoll(form, new Date());
    if ('problem' in built) {
      setProblem(built.problem);
      return;
    }
    setProblem(null);
    setBusy(true);
    try {
      const created = await account.withToken((token) => polls.create(built.poll, token));
      setForm(emptyForm());
      onCreated(created);
    } catch (err) {
      setProblem(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card create-poll stack" onSubmit={submit} noValidate aria-labelledby="create-heading">
      <h2 id="create-heading">New poll</h2>
      <label for="poll-question">Question</label>
      <textarea
        id="poll-question"
        name="question"
        rows={2}
        aria-describedby="poll-question-count"
        value={form.question}
        onInput={(e) => set('question', e.currentTarget.value)}
        required
      />
      <CharacterCount id="poll-question-count" text={form.question} max={MAX_QUESTION_CHARS} />
      <fieldset>
        <legend>Options</legend>
        <ol class="option-inputs">
          {form.options.map((text, index) => (
            <li key={index}>
              <label class="visually-hidden" for={`poll-option-${index}`}>
                Option {index + 1}
              </label>
              <input
                id={`poll-option-${index}`}
                name="option"
                aria-describedby={`poll-option-${index}-count`}
                placeholder={`Option ${index + 1}`}
                value={text}
                onInput={(e) => setOption(index, e.currentTarget.value)}
              />
              <CharacterCount
                id={`poll-option-${index}-count`}
                text={text}
                max={MAX_OPTION_CHARS}
                from={OPTION_COUNT_FROM}
              />
              {form.options.length > 2 && (
                <button
                  type="button"
                  class="quiet"
                  aria-label={`Remove option ${index + 1}`}
                  onClick={() => set('options', form.options.filter((_, i) => i !== index))}
                >
                  Remove
                </button>
              )}
            </li>
          ))}
        </ol>
        {form.options.length < MAX_OPTIONS && (
          <button type="button" class="secondary" onClick={() => set('options', [...form.options, ''])}>
            Add an option
          </button>
        )}
      </fieldset>
      <fieldset>
        <legend>Answers per voter</legend>
        {(['single', 'multiple'] as PollKind[]).map((kind) => (
          <label class="inline" key={kind}>
            <input
              type="radio"
              name="kind"
              value={kind}
              checked={form.kind === kind}
              onChange={() => set('kind', kind)}
            />{' '}
            {kind === 'single' ? 'One option (single choice)' : 'Several options (multiple choice)'}
          </label>
        ))}
        {form.kind === 'multiple' && (
          <div class="choice-bounds">
            <label for="poll-min">At least</label>
            <input
              id="poll-min"
              name="minChoices"
              type="number"
              inputMode="numeric"
              min={1}
              max={MAX_OPTIONS}
              placeholder="1"
              value={form.minChoices}
              onInput={(e) => set('minChoices', e.currentTarget.value)}
            />
            <label for="poll-max">At most</label>
            <input
              id="poll-max"
              name="maxChoices"
              type="number"
              inputMode="numeric"
              min={1}
              max={MAX_OPTIONS}
              placeholder="all"
              value={form.maxChoices}
              onInput={(e) => set('maxChoices', e.currentTarget.value)}
            />
          </div>
        )}
      </fieldset>
      <label for="poll-visibility">Who sees the results</label>
      <select
        id="poll-visibility"
        name="resultsVisibility"
        value={form.resultsVisibility}
        onChange={(e) => set('resultsVisibility', e.currentTarget.value as ResultsVisibility)}
      >
        {VISIBILITY.map((v) => (
          <option key={v.value} value={v.value}>
            {v.label}
          </option>
        ))}
      </select>
      <label for="poll-closes">Closes by itself at (optional)</label>
      <input
        id="poll-closes"
        name="closesAt"
        type="datetime-local"
        value={form.closesAt}
        onInput={(e) => set('closesAt', e.currentTarget.value)}
      />
      <label class="inline">
        <input
          type="checkbox"
          name="allowGuests"
          checked={form.allowGuests}
          onChange={(e) => set('allowGuests', e.currentTarget.checked)}
        />{' '}
        Guests may vote without an account
      </label>
      {problem && (
        <p class="problem" role="alert">
          {problem}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Creating…' : 'Create poll'}
      </button>
    </form>
  );
}
