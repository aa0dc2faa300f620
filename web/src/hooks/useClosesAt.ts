/** Whether a poll's `closesAt` has passed, turning true at that moment on an open page. */

import { useEffect, useState } from 'preact/hooks';

/** Longest single wait; a timer set further ahead is not reliable in every browser. */
const MAX_WAIT_MS = 2 ** 31 - 1;

export function useClosesAt(closesAt: string | null): boolean {
  const deadline = closesAt ? Date.parse(closesAt) : NaN;
  const [passed, setPassed] = useState(() => deadline <= Date.now());
  useEffect(() => {
    if (Number.isNaN(deadline)) {
      setPassed(false);
      return undefined;
    }
    const left = deadline - Date.now();
    setPassed(left <= 0);
    if (left <= 0 || left > MAX_WAIT_MS) return undefined;
    const timer = setTimeout(() => setPassed(true), left);
    return () => clearTimeout(timer);
  }, [deadline]);
  return passed;
}
