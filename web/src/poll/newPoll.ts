/**
 * The "new poll" form's values turned into the body of `POST /api/v1/polls`, with the
 * mistakes the API would refuse caught first and said in the form's words.
 */

import type { NewPoll, PollKind, ResultsVisibility } from '../api/types';
import {
  MAX_OPTION_CHARS,
  MAX_QUESTION_CHARS,
  type TextProblem,
  comparisonKey,
  graphemes,
  normalizeText,
} from './text';

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

function wholeNumber(value: string): number | null {
  return /^\s*\d+\s*$/.test(value) ? Number(value) : null;
}

/** A short quote of an option for a message: its first grapheme clusters, never half of one. */
function quote(text: string): string {
  const clusters = graphemes(text);
  return clusters.length > 30 ? `${clusters.slice(0, 30).join('')}…` : text;
}

function textProblem(field: string, problem: TextProblem): string {
  switch (problem.kind) {
    case 'blank':
      return `${field} has nothing visible in it.`;
    case 'too_long':
      return `${field} is longer than ${problem.max} characters.`;
    case 'control':
      return `${field} holds a control character (U+${problem.code.toString(16).toUpperCase().padStart(4, '0')}).`;
  }
}

/**
 * The request body, or what is wrong with the form. Texts are normalised as the server stores
 * them (`poll/text.ts`), so lengths count what a reader counts and duplicates are options a
 * reader cannot tell apart.
 */
export function toNewPoll(form: NewPollForm, now: Date): { poll: NewPoll } | { problem: string } {
  if (form.question.trim() === '') return { problem: 'Write the question.' };
  const question = normalizeText(form.question, MAX_QUESTION_CHARS);
  if ('problem' in question) return { problem: textProblem('The question', question.problem) };
  // An empty field is an option not written yet; one holding only invisible characters is
  // refused, as the server would.
  const written = form.options.flatMap((raw, index) => (raw.trim() === '' ? [] : [{ raw, field: index + 1 }]));
  if (written.length < 2) return { problem: 'Give at least two options.' };
  if (written.length > MAX_OPTIONS) return { problem: `A poll has at most ${MAX_OPTIONS} options.` };
  const options: string[] = [];
  const seen = new Map<string, string>();
  for (const { raw, field } of written) {
    const option = normalizeText(raw, MAX_OPTION_CHARS);
    if ('problem' in option) return { problem: textProblem(`Option ${field}`, option.problem) };
    const key = comparisonKey(option.text);
    const first = seen.get(key);
    if (first !== undefined) {
      const same = first === option.text ? '' : ` (it reads the same as “${quote(first)}”)`;
      return { problem: `The option “${quote(option.text)}” appears twice${same}.` };
    }
    seen.set(key, option.text);
    options.push(option.text);
  }
  const poll: NewPoll = {
    question: question.text,
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
