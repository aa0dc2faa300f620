/**
 * The "new poll" form's values turned into the body of `POST /api/v1/polls`, with the
 * mistakes the API would refuse caught first and said in the form's words.
 */

import type { NewPoll, PollKind, ResultsVisibility } from '../api/types';

export interface NewPollForm {
  question: string;
  options: string[];
  kind: PollKind;
  /** As typed; empty means the API's default. */
  minChoices: string;
  maxChoices: string;
  /** A `datetime-local` value in the presenter's time zone; empty for no deadline. */
  closesAt: string;
  resultsVisibility: ResultsVisibility;
  allowGuests: boolean;
}

export const MAX_OPTIONS = 50;

export function emptyForm(): NewPollForm {
  return {
    question: '',
    options: ['', ''],
    kind: 'single',
    minChoices: '',
    maxChoices: '',
    closesAt: '',
    resultsVisibility: 'always',
    allowGuests: true,
  };
}

const collapse = (text: string) => text.replace(/\s+/g, ' ').trim();

function wholeNumber(value: string): number | null {
  return /^\s*\d+\s*$/.test(value) ? Number(value) : null;
}

/** The request body, or what is wrong with the form. */
export function toNewPoll(form: NewPollForm, now: Date): { poll: NewPoll } | { problem: string } {
  const question = collapse(form.question);
  if (!question) return { problem: 'Write the question.' };
  if ([...question].length > 500) return { problem: 'The question is longer than 500 characters.' };
  const options = form.options.map(collapse).filter((text) => text !== '');
  if (options.length < 2) return { problem: 'Give at least two options.' };
  if (options.length > MAX_OPTIONS) return { problem: `A poll has at most ${MAX_OPTIONS} options.` };
  const tooLong = options.find((text) => [...text].length > 200);
  if (tooLong) return { problem: `The option “${tooLong.slice(0, 30)}…” is longer than 200 characters.` };
  const seen = new Set<string>();
  for (const text of options) {
    const key = text.normalize('NFKC').toLowerCase();
    if (seen.has(key)) return { problem: `The option “${text}” appears twice.` };
    seen.add(key);
  }
  const poll: NewPoll = {
    question,
    options,
    kind: form.kind,
    resultsVisibility: form.resultsVisibility,
    // Sent only when it differs from the API's default, so servers without it still work.
    ...(form.allowGuests ? {} : { allowGuests: false }),
  };
  if (form.kind === 'multiple') {
    const max = form.maxChoices.trim() === '' ? options.length : wholeNumber(form.maxChoices);
    if (max === null || max < 1 || max > options.length) {
      return { problem: `“At most” must be a number from 1 to ${options.length}.` };
    }
    const min = form.minChoices.trim() === '' ? 1 : wholeNumber(form.minChoices);
    if (min === null || min < 1 || min > max) return { problem: `“At least” must be a number from 1 to ${max}.` };
    if (form.minChoices.trim() !== '') poll.minChoices = min;
    if (form.maxChoices.trim() !== '') poll.maxChoices = max;
  }
  if (form.closesAt.trim() !== '') {
    const closesAt = new Date(form.closesAt);
    if (Number.isNaN(closesAt.getTime())) return { problem: 'The closing time is not a valid date and time.' };
    if (closesAt.getTime() <= now.getTime()) return { problem: 'The closing time must be in the future.' };
    poll.closesAt = closesAt.toISOString();
  }
  return { poll };
}
