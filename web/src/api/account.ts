/**
 * The presenter's login: tokens kept in localStorage (shared by the console and the big
 * screen in other tabs), the access token refreshed with the rotating refresh token shortly
 * before it expires and again on a `401`, so the presenter never notices.
 *
 * A refresh token works once: presenting it twice revokes the whole login. Tabs therefore
 * refresh one at a time (a Web Lock where the browser offers one) and a tab that finds the
 * token already rotated by another simply takes the new one from storage.
 */

import { auth } from './client';
import { ApiError } from './http';
import { expiresAt, isExpired, refreshDelay } from './expiry';
import type { AccountTokens } from './types';

const STORAGE_KEY = 'pollstream.account';
const LOCK_NAME = 'pollstream.account.refresh';
/** Wait before trying again when a refresh failed for a reason other than the token. */
const RETRY_MS = 15_000;

export interface Account {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
  /** Browser-clock milliseconds when the access token arrived and when it expires. */
  issuedAt: number;
  expiresAt: number;
}

type Listener = (account: Account | null) => void;

function isAccount(value: unknown): value is Account {
  const a = value as Account;
  return (
    typeof a === 'object' &&
    a !== null &&
    typeof a.userId === 'string' &&
    typeof a.email === 'string' &&
    typeof a.accessToken === 'string' &&
    typeof a.refreshToken === 'string' &&
    typeof a.issuedAt === 'number' &&
    typeof a.expiresAt === 'number'
  );
}

export class AccountSession {
  private readonly listeners = new Set<Listener>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<Account | null> | null = null;
  /** Why the login ended without the presenter logging out, to tell them once. */
  endedBecause: string | null = null;

  constructor(private readonly storage: Storage) {
    window.addEventListener('storage', (event) => {
      if (event.key === STORAGE_KEY || event.key === null) this.changed();
    });
    document.addEventListener('visibilitychange', () => {
      // Timers sleep in background tabs; catch up as soon as the tab is seen again.
      if (document.visibilityState === 'visible') this.schedule();
    });
    this.schedule();
  }

  current(): Account | null {
    try {
      const value: unknown = JSON.parse(this.storage.getItem(STORAGE_KEY) ?? 'null');
      return isAccount(value) ? value : null;
    } catch {
      return null;
    }
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async register(email: string, password: string): Promise<Account> {
    return this.start(email, await auth.register(email, password));
  }

  async login(email: string, password: string): Promise<Account> {
    return this.start(email, await auth.login(email, password));
  }

  async logout(): Promise<void> {
    const account = this.current();
    this.end(null);
    if (account) await auth.logout(account.refreshToken).catch(() => undefined);
  }

  /** A valid access token, refreshed first if it is about to expire; `401` when logged out. */
  async accessToken(): Promise<string> {
    const account = this.current();
    if (!account) throw new ApiError(401, 'not_logged_in', 'Log in first.');
    if (!isExpired(account.expiresAt, Date.now())) return account.accessToken;
    const refreshed = await this.refresh(account.refreshToken);
    if (!refreshed) throw new ApiError(401, 'session_ended', this.endedBecause ?? 'Log in again.');
    return refreshed.accessToken;
  }

  /** Runs `call` with an access token; on `401` refreshes once and runs it again. */
  async withToken<T>(call: (token: string) => Promise<T>): Promise<T> {
    const token = await this.accessToken();
    try {
      return await call(token);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const account = this.current();
      if (!account) throw err;
      const refreshed = account.accessToken === token ? await this.refresh(account.refreshToken) : account;
      if (!refreshed) throw new ApiError(401, 'session_ended', this.endedBecause ?? 'Log in again.');
      return call(refreshed.accessToken);
    }
  }

  /**
   * Trades `staleRefreshToken` for new tokens, once per tab at a time. Resolves to the new
   * account, or `null` when the login is over (the refresh token was refused).
   */
  refresh(staleRefreshToken: string): Promise<Account | null> {
    if (!this.inFlight) {
      const run = (): Promise<Account | null> => this.rotate(staleRefreshToken);
      // `request` resolves to what `run` resolves to; its type says Promise<Promise<...>>.
      const locked =
        typeof navigator !== 'undefined' && navigator.locks
          ? (navigator.locks.request(LOCK_NAME, run) as unknown as Promise<Account | null>)
          : run();
      this.inFlight = locked.finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  private async rotate(staleRefreshToken: string): Promise<Account | null> {
    const latest = this.current();
    if (!latest) return null;
    if (latest.refreshToken !== staleRefreshToken && !isExpired(latest.expiresAt, Date.now())) {
      return latest; // Another tab has just rotated it.
    }
    let tokens: AccountTokens;
    try {
      tokens = await auth.refresh(latest.refreshToken);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.end(`Your login has ended (${err.message.replace(/[.;].*$/, '')}). Log in again.`);
        return null;
      }
      throw err;
    }
    return this.save({ ...latest, ...this.fromTokens(tokens) });
  }

  private start(email: string, tokens: AccountTokens): Account {
    this.endedBecause = null;
    return this.save({ email: email.trim().toLowerCase(), ...this.fromTokens(tokens) });
  }

  private fromTokens(tokens: AccountTokens): Omit<Account, 'email'> {
    const now = Date.now();
    return {
      userId: tokens.userId,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      issuedAt: now,
      expiresAt: expiresAt(now, tokens.expiresIn),
    };
  }

  private save(account: Account): Account {
    this.storage.setItem(STORAGE_KEY, JSON.stringify(account));
    this.changed();
    return account;
  }

  private end(reason: string | null): void {
    this.endedBecause = reason;
    this.storage.removeItem(STORAGE_KEY);
    this.changed();
  }

  private changed(): void {
    this.schedule();
    const account = this.current();
    for (const listener of this.listeners) listener(account);
  }

  /** Sets the one timer that refreshes the access token ahead of its expiry. */
  private schedule(): void {
    clearTimeout(this.timer);
    const account = this.current();
    if (!account) return;
    // A little jitter, so that tabs opened together do not all reach for the token at once.
    const delay = refreshDelay(account.issuedAt, account.expiresAt, Date.now()) + Math.random() * 2000;
    this.timer = setTimeout(() => {
      this.refresh(account.refreshToken).catch(() => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.schedule(), RETRY_MS);
      });
    }, delay);
  }
}
