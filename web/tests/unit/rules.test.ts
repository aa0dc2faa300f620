/**
 * The web app's copies of the join-code and ballot rules give the answers of the Rust rules
 * they copy: `tests/fixtures/rules.json` holds cases with those answers, written by
 * `libs/store/tests/web_rules.rs`, which also fails when the file falls behind the rules.
 */

import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { checkBallot, choiceRule } from '../../src/poll/choices';
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
