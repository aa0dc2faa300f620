import { describe, expect, it } from 'vitest';

import { emptyForm, toNewPoll } from '../../src/poll/newPoll';
import { characterCount } from '../../src/poll/text';

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

  it('counts, keeps and compares texts as the server does, by grapheme cluster', () => {
    const england = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}';
    const scotland = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';
    const wales = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}';
    const sent = (changes: Parameters<typeof form>[0]) => {
      const result = toNewPoll(form(changes), now);
      return 'poll' in result ? result.poll : result.problem;
    };
    // The three flags are three options, each one character with its tags kept.
    expect(sent({ question: 'Which flag? \u2764\uFE0F', options: [england, ` ${scotland} `, wales] })).toEqual({
      question: 'Which flag? \u2764\uFE0F',
      options: [england, scotland, wales],
      kind: 'single',
      resultsVisibility: 'always',
    });
    // 200 flags of seven code points each are 200 characters: an option may hold them, not 201.
    const longest = [england.repeat(200), 'No flag'];
    expect(sent({ options: longest })).toMatchObject({ options: longest });
    expect(sent({ options: [england.repeat(201), 'No flag'] })).toBe('Option 1 is longer than 200 characters.');
    expect(sent({ question: 'é'.repeat(500) })).toMatchObject({ question: 'é'.repeat(500) });
    expect(sent({ question: 'e\u0301'.repeat(501) })).toBe('The question is longer than 500 characters.');
    // One character drawn two ways is one option; the text as written is what is sent.
    expect(sent({ options: ['\u2764\uFE0F', '\u2764'] })).toBe(
      'The option “\u2764” appears twice (it reads the same as “\u2764\uFE0F”).',
    );
    expect(sent({ options: ['Ja', 'Straße', 'STRASSE'] })).toMatch(/“STRASSE” appears twice/);
    // Nothing visible: refused as the server would, naming the field.
    expect(sent({ options: ['Yes', '\u200B', 'No'] })).toBe('Option 2 has nothing visible in it.');
    expect(sent({ question: '\uFE0F' })).toBe('The question has nothing visible in it.');
    expect(sent({ options: ['Ye\u200Bs', 'No'] })).toMatchObject({ options: ['Yes', 'No'] });
  });

  it("counts what the server counts for the form's counters", () => {
    const england = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}';
    expect(characterCount(`  ${england} 1\uFE0F\u20E3  `)).toBe(3);
    expect(characterCount('Cafe\u0301')).toBe(4);
    expect(characterCount('\u200B \u2800')).toBe(0);
  });
});
