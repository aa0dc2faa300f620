/**
 * The ballot rule of a poll (how many options one vote takes), enforced in the form with the
 * same bounds the API checks, so a voter learns what is wrong before sending.
 */

import type { Poll } from '../api/types';

/** Fewest and most options one ballot may hold. */
export interface ChoiceRule {
  min: number;
  max: number;
}

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

/** Why a ballot of `count` options cannot be sent, or `null` when it can. */
export function choiceProblem({ min, max }: ChoiceRule, count: number): string | null {
  if (count === 0) return max === 1 ? 'Choose an option first.' : 'Choose at least one option first.';
  if (count < min) return `Choose at least ${min} options (${count} chosen).`;
  if (count > max) return max === 1 ? 'Choose only one option.' : `Choose at most ${max} options (${count} chosen).`;
  return null;
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
