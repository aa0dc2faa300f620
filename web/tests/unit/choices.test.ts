import { describe, expect, it } from 'vitest';

import { choiceProblem, choiceRule, describeRule, toggleChoice } from '../../src/poll/choices';

const options = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `o${i}`, text: `Option ${i}` }));

describe('choice rule', () => {
  it('is exactly one for a single-choice poll', () => {
    expect(choiceRule({ kind: 'single', minChoices: 1, maxChoices: 1, options: options(3) })).toEqual({ min: 1, max: 1 });
  });

  it('takes the poll\'s bounds, kept within the options', () => {
    expect(choiceRule({ kind: 'multiple', minChoices: 2, maxChoices: 3, options: options(5) })).toEqual({ min: 2, max: 3 });
    expect(choiceRule({ kind: 'multiple', minChoices: 1, maxChoices: 9, options: options(4) })).toEqual({ min: 1, max: 4 });
    expect(choiceRule({ kind: 'multiple', minChoices: 6, maxChoices: 3, options: options(4) })).toEqual({ min: 3, max: 3 });
  });

  it('is described in words', () => {
    expect(describeRule({ min: 1, max: 1 })).toBe('Choose one option.');
    expect(describeRule({ min: 1, max: 3 })).toBe('Choose up to 3 options.');
    expect(describeRule({ min: 2, max: 3 })).toBe('Choose 2 to 3 options.');
    expect(describeRule({ min: 2, max: 2 })).toBe('Choose exactly 2 options.');
  });
});

describe('a ballot', () => {
  const rule = { min: 2, max: 3 };

  it('needs at least the minimum', () => {
    expect(choiceProblem(rule, 0)).toMatch(/at least one/);
    expect(choiceProblem(rule, 1)).toBe('Choose at least 2 options (1 chosen).');
    expect(choiceProblem(rule, 2)).toBeNull();
    expect(choiceProblem(rule, 3)).toBeNull();
    expect(choiceProblem(rule, 4)).toBe('Choose at most 3 options (4 chosen).');
    expect(choiceProblem({ min: 1, max: 1 }, 0)).toBe('Choose an option first.');
  });

  it('refuses a tick beyond the maximum and keeps the selection', () => {
    let selected: string[] = [];
    for (const id of ['a', 'b', 'c']) selected = toggleChoice(rule, selected, id, true).selected;
    expect(selected).toEqual(['a', 'b', 'c']);
    const refused = toggleChoice(rule, selected, 'd', true);
    expect(refused.selected).toEqual(['a', 'b', 'c']);
    expect(refused.refused).toMatch(/at most 3/);
    const untick = toggleChoice(rule, selected, 'b', false);
    expect(untick).toEqual({ selected: ['a', 'c'], refused: null });
    expect(toggleChoice(rule, untick.selected, 'd', true).selected).toEqual(['a', 'c', 'd']);
  });

  it('of one choice replaces the previous one', () => {
    expect(toggleChoice({ min: 1, max: 1 }, ['a'], 'b', true)).toEqual({ selected: ['b'], refused: null });
  });
});
