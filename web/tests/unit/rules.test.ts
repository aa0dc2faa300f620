/**
 * The web app's copies of the join-code, ballot and text rules give the answers of the Rust
 * rules they copy: `tests/fixtures/rules.json` holds cases with those answers, written by
 * `libs/store/tests/web_rules.rs`, which also fails when the file falls behind the rules.
 */

import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { checkBallot, choiceRule } from '../../src/poll/choices';
import { MAX_OPTION_CHARS, characterCount, comparisonKey, graphemes, normalizeText } from '../../src/poll/text';
import { looksLikeCode, normalizeCode } from '../../src/router';

interface Cases {
  joinCodes: { typed: string; code: string; valid: boolean }[];
  ballots: {
    kind: 'single' | 'multiple';
    minChoices: number;
    maxChoices: number;
    options: string[];
    chosen: string[];
    limits: { min: number; max: number };
    count: string | null;
    choice: string | null;
    valid: boolean;
  }[];
  texts: { typed: string; normalized: string | null; characters: number; fitsOption: boolean }[];
  optionPairs: { a: string; b: string; same: boolean }[];
}

const cases = JSON.parse(readFileSync(new URL('../fixtures/rules.json', import.meta.url), 'utf8')) as Cases;

describe('join codes, as the Rust rule reads them', () => {
  it('has cases', () => expect(cases.joinCodes.length).toBeGreaterThan(10));

  for (const { typed, code, valid } of cases.joinCodes) {
    it(`reads ${JSON.stringify(typed)} as ${JSON.stringify(code)}, ${valid ? 'a code' : 'no code'}`, () => {
      expect(normalizeCode(typed)).toBe(code);
      expect(looksLikeCode(normalizeCode(typed))).toBe(valid);
    });
  }
});

describe('ballots, as the Rust rule checks them', () => {
  it('has cases', () => expect(cases.ballots.length).toBeGreaterThan(10));

  for (const ballot of cases.ballots) {
    const { kind, minChoices, maxChoices, options, chosen } = ballot;
    const name = `${kind} ${minChoices}..${maxChoices} of ${options.length}, choosing ${chosen.length}`;
    it(`${name}: ${ballot.valid ? 'valid' : `${ballot.count ?? '-'} / ${ballot.choice ?? '-'}`}`, () => {
      const rule = choiceRule({ kind, minChoices, maxChoices, options: options.map((id) => ({ id, text: id })) });
      expect(rule).toEqual(ballot.limits);
      const check = checkBallot(rule, chosen, options);
      expect(check).toEqual({ count: ballot.count, choice: ballot.choice });
      expect(check.count === null && check.choice === null).toBe(ballot.valid);
    });
  }
});

/** A case's name: short, with invisible and astral characters spelled out. */
function shown(text: string): string {
  const escaped = [...text]
    .map((c) => (/[\p{L}\p{N}\p{P} ]/u.test(c) && c.length === 1 ? c : `\\u{${c.codePointAt(0)?.toString(16)}}`))
    .join('');
  return escaped.length > 60 ? `${escaped.slice(0, 60)}… (${[...text].length} code points)` : escaped;
}

describe('poll texts, as the Rust rule normalises and counts them', () => {
  it('has cases', () => expect(cases.texts.length).toBeGreaterThan(20));

  for (const { typed, normalized, characters, fitsOption } of cases.texts) {
    const answer = normalized === null ? 'refused' : `${characters} characters`;
    it(`reads "${shown(typed)}": ${answer}, ${fitsOption ? 'fits' : 'does not fit'} an option`, () => {
      const unbounded = normalizeText(typed, Number.MAX_SAFE_INTEGER);
      expect('text' in unbounded ? unbounded.text : null).toBe(normalized);
      expect(characterCount(typed)).toBe(characters);
      if (normalized !== null) expect(graphemes(normalized)).toHaveLength(characters);
      expect('text' in normalizeText(typed, MAX_OPTION_CHARS)).toBe(fitsOption);
    });
  }
});

describe('options, as the Rust rule tells them apart', () => {
  it('has cases', () => expect(cases.optionPairs.length).toBeGreaterThan(10));

  for (const { a, b, same } of cases.optionPairs) {
    it(`"${shown(a)}" and "${shown(b)}" are ${same ? 'one option' : 'two options'}`, () => {
      expect(comparisonKey(a) === comparisonKey(b)).toBe(same);
    });
  }
});
