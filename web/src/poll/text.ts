/**
 * The poll form's copy of the server's text rules (`libs/wire/src/input.rs`): a question or
 * option is normalised one extended grapheme cluster (what a reader sees as one character,
 * Unicode Standard Annex #29, from `Intl.Segmenter`) at a time, its length counts those
 * clusters, and two options are the same when their comparison keys are. Character classes
 * come from the Unicode properties the JavaScript engine knows (`\p{…}`), never from tables
 * written here. `tests/unit/rules.test.ts` checks these functions give the Rust rules' answers
 * on the cases in `tests/fixtures/rules.json`; the server decides.
 */

/** Longest question, in grapheme clusters after normalisation (`MAX_QUESTION_CHARS`). */
export const MAX_QUESTION_CHARS = 500;

/** Longest option, in grapheme clusters after normalisation (`MAX_OPTION_CHARS`). */
export const MAX_OPTION_CHARS = 200;

/**
 * Code points a text may hold per grapheme cluster of its limit (`CODE_POINTS_PER_GRAPHEME`):
 * bounds one cluster stacking hundreds of marks, with room for an 11-code-point family emoji.
 */
export const CODE_POINTS_PER_GRAPHEME = 16;

/** ZERO WIDTH JOINER: invisible, but it glues emoji sequences (👩‍💻). */
const ZWJ = '\u200D';

/** BRAILLE PATTERN BLANK: a symbol that renders as nothing, a known way to fake an empty option. */
const BRAILLE_BLANK = '\u2800';

const CONTROL = /^\p{Cc}$/u;
const WHITESPACE = /^\p{White_Space}$/u;
/** Format characters and default-ignorable code points: zero width spaces, selectors, tags. */
const INVISIBLE = /^[\p{Cf}\p{Default_Ignorable_Code_Point}]$/u;

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

const isControl = (c: string) => CONTROL.test(c);
const isWhitespace = (c: string) => WHITESPACE.test(c);
const isInvisible = (c: string) => INVISIBLE.test(c);
/** Tag characters (U+E0020 to U+E007F): after U+1F3F4 they name a flag, so they are kept. */
const isTag = (c: string) => {
  const code = c.codePointAt(0) ?? 0;
  return code >= 0xe0020 && code <= 0xe007f;
};
const isVisible = (c: string) => !isWhitespace(c) && !isInvisible(c) && !isControl(c) && c !== BRAILLE_BLANK;
const firstChar = (cluster: string) => String.fromCodePoint(cluster.codePointAt(0) ?? 0);

/** The extended grapheme clusters of `text`, in order. */
export function graphemes(text: string): string[] {
  return Array.from(segmenter.segment(text), (part) => part.segment);
}

/** Why a text is refused, as `TextError` says it. */
export type TextProblem =
  | { kind: 'blank' }
  | { kind: 'too_long'; max: number }
  /** `code` is the offending code point. */
  | { kind: 'control'; code: number };

/**
 * `raw` as the server stores it (`normalize_text`): NFC, each grapheme cluster kept whole with
 * its selectors, joiners and tags, clusters of invisible characters alone removed, whitespace
 * runs made one space, ends trimmed, a joiner ending a cluster kept only before a visible one.
 * Refuses control characters, text with nothing visible, and text longer than `maxChars`
 * clusters or `maxChars` × {@link CODE_POINTS_PER_GRAPHEME} code points.
 */
export function normalizeText(raw: string, maxChars: number): { text: string } | { problem: TextProblem } {
  for (const c of raw) {
    if (isControl(c) && !isWhitespace(c)) return { problem: { kind: 'control', code: c.codePointAt(0) ?? 0 } };
  }
  const clusters = graphemes(raw.normalize('NFC'));
  let text = '';
  let count = 0;
  let pendingSpace = false;
  clusters.forEach((cluster, index) => {
    // A whitespace character may carry extenders (" \u200D" is one cluster): still whitespace.
    if (isWhitespace(firstChar(cluster))) {
      pendingSpace = text !== '';
      return;
    }
    if ([...cluster].every(isInvisible)) return;
    let kept = cluster;
    if (kept.endsWith(ZWJ)) {
      const next = clusters[index + 1];
      const joins = !pendingSpace && next !== undefined && isVisible(firstChar(next));
      if (!joins) kept = kept.slice(0, -ZWJ.length);
    }
    if (pendingSpace) {
      text += ' ';
      count += 1;
      pendingSpace = false;
    }
    text += kept;
    count += 1;
  });
  if (comparisonKey(text) === '') return { problem: { kind: 'blank' } };
  if (count > maxChars || [...text].length > maxChars * CODE_POINTS_PER_GRAPHEME) {
    return { problem: { kind: 'too_long', max: maxChars } };
  }
  return { text };
}

/**
 * How many characters the server counts in `raw`: grapheme clusters after normalisation, so a
 * flag of seven code points is one and spaces at the ends are none. For the form's counters.
 */
export function characterCount(raw: string): number {
  const normalized = normalizeText(raw, Number.MAX_SAFE_INTEGER / CODE_POINTS_PER_GRAPHEME);
  return 'text' in normalized ? graphemes(normalized.text).length : 0;
}

/**
 * Unicode default case folding, one code point at a time so a final sigma folds like any
 * sigma. Lower, upper, lower again reaches the folded form through the case mappings the
 * engine has (`ẞ` → `ß` → `SS` → `ss`, `ﬀ` → `FF` → `ff`); the one code point where the
 * round trip goes further than folding is the dotless `ı`, which folding keeps apart from `i`.
 */
function caseFold(text: string): string {
  let folded = '';
  for (const c of text) {
    folded += c === 'ı' ? c : c.toLowerCase().toUpperCase().toLowerCase();
  }
  return folded;
}

/**
 * The key two options are compared by (`comparison_key`), one grapheme cluster at a time:
 * NFKC (`ｙｅｓ` is `yes`), case folding (`Straße` is `strasse`), clusters of invisible
 * characters dropped, whitespace runs made one space, and inside a cluster variation selectors
 * and other invisible characters dropped (`❤️` is `❤`) while joiners and tags stay (`👩‍💻` is not
 * `👩💻`, the England flag is not the Scotland flag). Same key, same look to a reader.
 */
export function comparisonKey(text: string): string {
  let key = '';
  let pendingSpace = false;
  for (const cluster of graphemes(text)) {
    const first = firstChar(cluster);
    if (isWhitespace(first) || first === BRAILLE_BLANK) {
      pendingSpace = key !== '';
      continue;
    }
    const drawn = [...cluster]
      .filter((c) => !isControl(c) && (!isInvisible(c) || c === ZWJ || isTag(c)))
      .join('')
      .replace(/^\u200D+|\u200D+$/gu, '');
    if (drawn === '' || [...drawn].every((c) => c === ZWJ || isTag(c))) continue;
    let clusterKey = '';
    for (const c of caseFold(drawn.normalize('NFKD')).normalize('NFKC')) {
      // Compatibility forms may hold spaces (U+33C2 is `a.m.`, U+2474 `(1)`).
      clusterKey += isWhitespace(c) || c === BRAILLE_BLANK ? ' ' : c;
    }
    if (pendingSpace) {
      key += ' ';
      pendingSpace = false;
    }
    key += clusterKey;
  }
  return key;
}
