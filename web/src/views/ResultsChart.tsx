/**
 * The bar chart of a poll's counts. Bars grow by CSS transition as snapshots arrive; their
 * widths are set through the CSSOM (never a `style` attribute), which a strict CSP allows.
 * Screen readers get a table of the same numbers and a spoken summary of each change.
 */

import { useLayoutEffect, useRef } from 'preact/hooks';

import type { Poll, Snapshot } from '../api/types';
import { chartPhase, type PollPhase, TOTAL_SUFFIX } from '../live/phase';
import { type Bar, describeBars, toBars } from '../live/snapshots';

interface Props {
  poll: Pick<Poll, 'options' | 'question'>;
  snapshot: Snapshot | null;
  /** Announce every change politely (big screen: off, it changes too often to be useful). */
  announce?: boolean;
  /** Options the viewer chose, marked in the chart. */
  chosen?: readonly string[];
  size?: 'normal' | 'large';
  /** Where the page knows the poll is (`pollPhase`); the chart claims `closed` only with a closed snapshot. */
  phase?: PollPhase;
}

function BarFill({ percent }: { percent: number }) {
  const fill = useRef<HTMLSpanElement>(null);
  useLayoutEffect(() => {
    if (fill.current) fill.current.style.width = `${Math.min(100, Math.max(0, percent))}%`;
  }, [percent]);
  return (
    <span class="bar-track" aria-hidden="true">
      <span class="bar-fill" ref={fill} />
    </span>
  );
}

function BarRow({ bar, chosen, leading }: { bar: Bar; chosen: boolean; leading: boolean }) {
  const classes = ['bar-row', chosen && 'chosen', leading && 'leading'].filter(Boolean).join(' ');
  return (
    <li class={classes} data-option-id={bar.optionId}>
      <span class="bar-label">
        {bar.text}
        {chosen && <span class="bar-mine"> (your choice)</span>}
      </span>
      <BarFill percent={bar.percent} />
      <span class="bar-value">
        <span class="bar-percent">{bar.percent}%</span>
        <span class="bar-votes">{bar.votes}</span>
      </span>
    </li>
  );
}

export function ResultsChart({ poll, snapshot, announce = true, chosen = [], size = 'normal', phase = 'open' }: Props) {
  const bars = toBars(poll, snapshot);
  const total = snapshot?.total ?? 0;
  const shown = chartPhase(phase, snapshot?.status ?? null);
  const closed = shown === 'closed';
  const most = Math.max(0, ...bars.map((bar) => bar.votes));
  return (
    <figure
      class={`chart chart-${size}${closed ? ' chart-closed' : ''}${shown === 'closing' ? ' chart-closing' : ''}`}
      data-status={shown}
      data-seq={snapshot?.seq ?? -1}
      data-total={total}
    >
      <ul class="bars" aria-hidden="true">
        {bars.map((bar) => (
          <BarRow
            key={bar.optionId}
            bar={bar}
            chosen={chosen.includes(bar.optionId)}
            leading={most > 0 && bar.votes === most}
          />
        ))}
      </ul>
      <figcaption class="chart-total">
        <span class="chart-total-number">{total}</span> {total === 1 ? 'vote' : 'votes'}
        {TOTAL_SUFFIX[shown]}
      </figcaption>
      <div class="visually-hidden">
        <table>
          <caption>
            {closed ? 'Final result' : shown === 'closing' ? 'Results so far, counting the last votes' : 'Results so far'}: {poll.question}
          </caption>
          <thead>
            <tr>
              <th scope="col">Option</th>
              <th scope="col">Votes</th>
              <th scope="col">Share</th>
            </tr>
          </thead>
          <tbody>
            {bars.map((bar) => (
              <tr key={bar.optionId}>
                <th scope="row">{bar.text}</th>
                <td>{bar.votes}</td>
                <td>{bar.percent}%</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {announce && (
        <p class="visually-hidden" aria-live="polite">
          {describeBars(bars, total, shown)}
        </p>
      )}
    </figure>
  );
}
