/** This page's account session, voter identity and live connection, shared by every view. */

import { AccountSession } from './api/account';
import { Voter } from './api/voter';
import { LiveConnection, realtimeUrl } from './live/connection';

export const account = new AccountSession(localStorage);
export const voter = new Voter(localStorage, account);

let connection: LiveConnection | null = null;

/** The Socket.IO connection, opened by the first view that needs it. */
export function live(): LiveConnection {
  if (!connection) {
    const meta = document.querySelector<HTMLMetaElement>('meta[name="pollstream-realtime-url"]');
    connection = new LiveConnection(realtimeUrl(meta?.content, location.origin));
  }
  return connection;
}
