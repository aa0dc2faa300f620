import { describe, expect, it } from 'vitest';

import { emptyForm, toNewPoll } from '../../src/poll/newPoll';

const now = new Date('2030-01-01T12:00:00Z');
const form = (changes: Partial<ReturnType<typeof emptyForm>>) => ({
  ...emptyForm(),
  question: 'Tabs or spaces?',
  options: ['Tabs', 'Spaces'],
  ...changes,
});

describe('new poll form', () => {
  it('sends the defaults as the API takes them', () => {
    expect(toNewPoll(form({}), now)).toEqual({
      poll: { question: 'Tabs or spaces?', options: ['Tabs', 'Spaces'], kind: 'single', resultsVisibility: 'always' },
    });
  });

  it('sends every option when set', () => {
    const closesAt = new Date(now.getTime() + 3_600_000);
    const local = new Date(closesAt.getTime() - closesAt.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    const result = toNewPoll(
      form({
        kind: 'multiple',
        options: ['A', ' B ', '', 'C'],
        minChoices: '2',
        maxChoices: '3',
        closesAt: local,
        resultsVisibility: 'after_close',
        allowGuests: false,
      }),
      now,
    );
    expect(result).toEqual({
      poll: {
        question: 'Tabs or spaces?',
        options: ['A', 'B', 'C'],
        kind: 'multiple',
        minChoices: 2,
        maxChoices: 3,
        closesAt: closesAt.toISOString(),
        resultsVisibility: 'after_close',
        allowGuests: false,
      },
    });
  });

  it('says what is wrong before the API has to', () => {
    const problem = (changes: Parameters<typeof form>[0]) => {
      const result = toNewPoll(form(changes), now);
      return 'problem' in result ? result.problem : null;
    };
    expect(problem({ question: '  ' })).toBe('Write the question.');
    expect(problem({ options: ['Only', ''] })).toBe('Give at least two options.');
    expect(problem({ options: ['Yes', 'yes'] })).toMatch(/appears twice/);
    expect(problem({ kind: 'multiple', maxChoices: '5' })).toMatch(/from 1 to 2/);
    expect(problem({ kind: 'multiple', minChoices: '2', maxChoices: '1' })).toMatch(/“At least” must be a number from 1 to 1/);
    expect(problem({ kind: 'multiple', minChoices: 'x' })).toMatch(/At least/);
    expect(problem({ closesAt: '2029-12-31T10:00' })).toBe('The closing time must be in the future.');
    // Bounds are ignored for a single-choice poll.
    expect(problem({ kind: 'single', maxChoices: '9' })).toBeNull();
  });
});
