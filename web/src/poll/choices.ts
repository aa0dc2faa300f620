/**
 * The ballot rule of a poll (how many options one vote takes), enforced in the form with the
 * same bounds the API checks, so a voter learns what is wrong before sending. The rule's home
 * is `check_choices` in `libs/store/src/ballots.rs`; `tests/unit/rules.test.ts` checks these
 * functions against the answers it gives (`tests/fixtures/rules.json`).
 */

import type { Poll } from '../api/types';

/** Fewest and most options one ballot may hold. */
export interface ChoiceRule {
  min: number;
  max: number;
}

/**
 * The limits of a poll as stored (Rust's `PollKind::choice_limits`): exactly one for
 * `single`. A stored poll has 1 <= min <= max <= options; the clamps only keep an odd answer
 * from a server sane.
 */
export function choiceRule(poll: Pick<Poll, 'kind' | 'minChoices' | 'maxChoices' | 'options'>): ChoiceRule {
  if (poll.kind === 'single') return { min: 1, max: 1 };
  const max = Math.max(1, Math.min(poll.maxChoices || poll.options.length, poll.options.length));
  const min = Math.max(1, Math.min(poll.minChoices || 1, max));
  return { min, max };
}

/** The instruction shown above the options. */
export function describeRule({ min, max }: ChoiceRule): string {
  if (max === 1) return 'Choose one option.';
  if (min === max) return `Choose exactly ${min} options.`;
  if (min === 1) return `Choose up to ${max} options.`;
  return `Choose ${min} to ${max} options.`;
}

/** What is wrong with the number of options a ballot holds (Rust's `CountFault`). */
export type CountFault = 'empty' | 'too_many' | 'too_few';

/** An option a ballot may not hold (Rust's `ChoiceFault`): chosen twice, or not the poll's. */
export type ChoiceFault = 'repeated' | 'unknown';

/** Everything wrong with a ballot, as Rust's `BallotCheck`; it may be sent when both are `null`. */
export interface BallotCheck {
  count: CountFault | null;
  /** The first option, in ballot order, that is repeated or not the poll's. */
  choice: ChoiceFault | null;
}

/** What is wrong with a ballot of `count` options, looked for in the API's order. */
export function countFault({ min, max }: ChoiceRule, count: number): CountFault | null {
  if (count === 0) return 'empty';
  if (count > max) return 'too_many';
  if (count < min) return 'too_few';
  return null;
}

/** Checks the `chosen` options of a ballot: distinct, each one of `optionIds`, as many as `rule` allows. */
export function checkBallot(rule: ChoiceRule, chosen: readonly string[], optionIds: readonly string[]): BallotCheck {
  const seen = new Set<string>();
  let choice: ChoiceFault | null = null;
  for (const id of chosen) {
    if (seen.has(id)) choice = 'repeated';
    else if (!optionIds.includes(id)) choice = 'unknown';
    if (choice) break;
    seen.add(id);
  }
  return { count: countFault(rule, chosen.length), choice };
}

/** Why a ballot of `count` options cannot be sent, or `null` when it can. */
export function choiceProblem(rule: ChoiceRule, count: number): string | null {
  const { min, max } = rule;
  switch (countFault(rule, count)) {
    case 'empty':
      return max === 1 ? 'Choose an option first.' : 'Choose at least one option first.';
    case 'too_many':
      return max === 1 ? 'Choose only one option.' : `Choose at most ${max} options (${count} chosen).`;
    case 'too_few':
      return `Choose at least ${min} options (${count} chosen).`;
    case null:
      return null;
  }
}

/** The selection after the voter ticks or unticks `optionId`, and why a tick was refused. */
export function toggleChoice(
  rule: ChoiceRule,
  selected: readonly string[],
  optionId: string,
  checked: boolean,
): { selected: string[]; refused: string | null } {
  if (rule.max === 1) return { selected: checked ? [optionId] : [], refused: null };
  if (!checked) return { selected: selected.filter((id) => id !== optionId), refused: null };
  if (selected.includes(optionId)) return { selected: [...selected], refused: null };
  if (selected.length >= rule.max) {
    return { selected: [...selected], refused: `You can choose at most ${rule.max} options: untick one first.` };
  }
  return { selected: [...selected, optionId], refused: null };
}
