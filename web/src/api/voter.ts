/**
 * Who votes from this browser. A logged-in person votes with their account; anyone else with
 * a guest token created once and kept in localStorage, so a reload (or the next poll) is the
 * same voter for as long as the token lives. An expired guest token is replaced by a new one.
 */

import type { AccountSession } from './account';
import { auth } from './client';
import { ApiError } from './http';
import { expiresAt, isExpired } from './expiry';

const STORAGE_KEY = 'pollstream.guest';

interface GuestToken {
  subject: string;
  accessToken: string;
  expiresAt: number;
}

function isGuestToken(value: unknown): value is GuestToken {
  const g = value as GuestToken;
  return (
    typeof g === 'object' &&
    g !== null &&
    typeof g.subject === 'string' &&
    typeof g.accessToken === 'string' &&
    typeof g.expiresAt === 'number'
  );
}

export type VoterKind = 'account' | 'guest';

export class Voter {
  private creating: Promise<GuestToken> | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly account: AccountSession,
  ) {}

  /** Whether votes from here are cast with an account or as a guest. */
  kind(): VoterKind {
    return this.account.current() ? 'account' : 'guest';
  }

  /** The voter's token, creating a guest token when there is none or it expired. */
  async token(): Promise<string> {
    if (this.account.current()) return this.account.accessToken();
    const stored = this.storedGuest();
    if (stored && !isExpired(stored.expiresAt, Date.now())) return stored.accessToken;
    return (await this.newGuest()).accessToken;
  }

  /** The voter's token if one exists already, without creating one (for read-only calls). */
  existingToken(): Promise<string | null> {
    if (this.account.current()) return this.account.accessToken().catch(() => null);
    const stored = this.storedGuest();
    return Promise.resolve(stored && !isExpired(stored.expiresAt, Date.now()) ? stored.accessToken : null);
  }

  /** Runs `call` with the voter's token; a guest token refused as invalid is replaced once. */
  async withToken<T>(call: (token: string) => Promise<T>): Promise<T> {
    if (this.account.current()) return this.account.withToken(call);
    const token = await this.token();
    try {
      return await call(token);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const stored = this.storedGuest();
      const fresh = stored && stored.accessToken !== token ? stored : await this.newGuest();
      return call(fresh.accessToken);
    }
  }

  private storedGuest(): GuestToken | null {
    try {
      const value: unknown = JSON.parse(this.storage.getItem(STORAGE_KEY) ?? 'null');
      return isGuestToken(value) ? value : null;
    } catch {
      return null;
    }
  }

  private newGuest(): Promise<GuestToken> {
    this.creating ??= auth
      .guest()
      .then((tokens) => {
        const guest = {
          subject: tokens.subject,
          accessToken: tokens.accessToken,
          expiresAt: expiresAt(Date.now(), tokens.expiresIn),
        };
        this.storage.setItem(STORAGE_KEY, JSON.stringify(guest));
        return guest;
      })
      .finally(() => {
        this.creating = null;
      });
    return this.creating;
  }
}
