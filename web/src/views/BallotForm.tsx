/**
 * The voting form: real radio buttons or checkboxes in a fieldset, so it works by keyboard
 * alone and with any screen reader, with the poll's min/max choices enforced before sending.
 */

import { useState } from 'preact/hooks';

import type { Poll } from '../api/types';
import type { VoterKind } from '../api/voter';
import { type ChoiceRule, choiceProblem, describeRule, toggleChoice } from '../poll/choices';

interface Props {
  poll: Poll;
  rule: ChoiceRule;
  sending: boolean;
  /** The API's answer to the last attempt, if it failed. */
  problem: string | null;
  votingAs: VoterKind;
  onSubmit(optionIds: string[]): void;
}

export function BallotForm({ poll, rule, sending, problem, votingAs, onSubmit }: Props) {
  const [selected, setSelected] = useState<string[]>([]);
  const [formProblem, setFormProblem] = useState<string | null>(null);
  const single = rule.max === 1;
  const shownProblem = formProblem ?? problem;

  const change = (input: HTMLInputElement) => {
    const next = toggleChoice(rule, selected, input.value, input.checked);
    // A refused tick is undone at once, whatever the re-render makes of an unchanged prop.
    if (next.refused) input.checked = false;
    setSelected(next.selected);
    setFormProblem(next.refused);
  };

  const submit = (event: Event) => {
    event.preventDefault();
    const why = choiceProblem(rule, selected.length);
    setFormProblem(why);
    if (!why) onSubmit(selected);
  };

  return (
    <form class="ballot" onSubmit={submit} noValidate aria-busy={sending}>
      <fieldset aria-describedby="ballot-rule">
        <legend>Your answer</legend>
        <p class="rule" id="ballot-rule">
          {describeRule(rule)}
        </p>
        <ul class="choices">
          {poll.options.map((option) => {
            const id = `choice-${option.id}`;
            const checked = selected.includes(option.id);
            return (
              <li key={option.id}>
                <label class={checked ? 'choice checked' : 'choice'} for={id}>
                  <input
                    id={id}
                    type={single ? 'radio' : 'checkbox'}
                    name="choice"
                    value={option.id}
                    checked={checked}
                    disabled={sending}
                    onChange={(e) => change(e.currentTarget)}
                  />
                  <span class="choice-text">{option.text}</span>
                </label>
              </li>
            );
          })}
        </ul>
      </fieldset>
      {!single && (
        <p class="hint" aria-live="polite">
          {selected.length} of {rule.max} chosen
        </p>
      )}
      {shownProblem && (
        <p class="problem" role="alert" data-testid="ballot-problem">
          {shownProblem}
        </p>
      )}
      <button type="submit" class="primary wide" disabled={sending}>
        {sending ? 'Sending…' : 'Vote'}
      </button>
      {votingAs === 'account' && <p class="hint">You vote with your account.</p>}
    </form>
  );
}
