/**
 * How many characters a text field holds of its limit, counted as the server counts them
 * (grapheme clusters after normalisation, `poll/text.ts`), never as UTF-16 units: a flag is one.
 */

import { characterCount } from '../poll/text';

/** `from`: the count below which nothing is shown, so short options stay uncluttered. */
export function CharacterCount({ id, text, max, from = 0 }: { id: string; text: string; max: number; from?: number }) {
  const count = characterCount(text);
  if (count < from) return null;
  return (
    <span id={id} class={count > max ? 'char-count over' : 'char-count'} data-testid="character-count">
      {count} / {max}
    </span>
  );
}
