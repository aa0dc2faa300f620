/** Tells the viewer when live updates are interrupted, and that they resume by themselves. */

import type { LinkState } from '../live/connection';

export function LinkStatus({ link }: { link: LinkState }) {
  return (
    <p class={`link-status link-${link}`} role="status" data-link={link}>
      {link === 'reconnecting' ? 'Connection lost, reconnecting…' : link === 'connecting' ? 'Connecting…' : ''}
    </p>
  );
}
