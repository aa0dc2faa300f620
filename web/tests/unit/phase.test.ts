import { describe, expect, it } from 'vitest';

import {
  chartPhase,
  laterOf,
  pollPhase,
  RESULTS_HEADING,
  SCREEN_STATE,
  STATUS_LABEL,
  SUMMARY_LEAD,
  TOTAL_SUFFIX,
} from '../../src/live/phase';

describe('poll phase', () => {
  it('is open until something says voting stopped', () => {
    expect(pollPhase({})).toBe('open');
    expect(pollPhase({ polled: 'open', snapshot: 'open' })).toBe('open');
  });

  it('is closing once closesAt passed or a vote was refused as closed, without the server saying so', () => {
    expect(pollPhase({ polled: 'open', snapshot: 'open', stopped: true })).toBe('closing');
  });

  it('is closing while the server says closing, from any source', () => {
    expect(pollPhase({ polled: 'closing', snapshot: 'open' })).toBe('closing');
    expect(pollPhase({ polled: 'open', snapshot: 'closing' })).toBe('closing');
    expect(pollPhase({ hidden: 'closing' })).toBe('closing');
  });

  it('is closed only when a source says closed, and stays closed', () => {
    expect(pollPhase({ polled: 'closing', snapshot: 'closed' })).toBe('closed');
    expect(pollPhase({ polled: 'closed', snapshot: null })).toBe('closed');
    expect(pollPhase({ hidden: 'closed', stopped: true })).toBe('closed');
    expect(laterOf('closed', 'open')).toBe('closed');
    expect(laterOf('closing', 'closed')).toBe('closed');
    expect(laterOf('open', 'closing')).toBe('closing');
  });
});

describe('chart phase', () => {
  it('claims final only over the closed snapshot\'s counts', () => {
    expect(chartPhase('closed', 'closing')).toBe('closing');
    expect(chartPhase('closed', 'open')).toBe('closing');
    expect(chartPhase('closed', 'closed')).toBe('closed');
    expect(chartPhase('closing', 'open')).toBe('closing');
    expect(chartPhase('open', 'open')).toBe('open');
  });
});

describe('labels', () => {
  it('say final only when closed', () => {
    for (const labels of [SCREEN_STATE, STATUS_LABEL, RESULTS_HEADING, TOTAL_SUFFIX, SUMMARY_LEAD]) {
      expect(labels.open).not.toMatch(/final/i);
      expect(labels.closing).not.toMatch(/final/i);
    }
    expect(SCREEN_STATE.closed).toBe('Voting closed · final result');
    expect(RESULTS_HEADING.closed).toBe('Final result');
    expect(TOTAL_SUFFIX.closed).toBe(' · final result');
  });

  it('say the last votes are being counted while closing', () => {
    expect(SCREEN_STATE.closing).toBe('Voting closed · counting the last votes…');
    expect(RESULTS_HEADING.closing).toBe('Counting the last votes…');
    expect(TOTAL_SUFFIX.closing).toBe(' · counting the last votes…');
    expect(STATUS_LABEL).toEqual({ open: 'Open', closing: 'Closing', closed: 'Closed' });
  });
});
