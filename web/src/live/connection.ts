/**
 * The page's one Socket.IO connection to realtime-service, and the poll rooms it is in.
 *
 * After any reconnect every room is joined again and its acknowledgement (the current
 * snapshot) is handed on like any other snapshot, so a screen that missed updates while
 * offline catches up; stale snapshots are dropped by the receiver (see `snapshots.ts`).
 */

import { io, type Socket } from 'socket.io-client';

import type { ErrorBody, HiddenResults, Presence, Snapshot } from '../api/types';

export type LinkState = 'connecting' | 'online' | 'reconnecting';

/** What a view hears about one poll. */
export interface RoomEvents {
  /** A full count: the `join` answer, `poll-results` or `poll-closed`. */
  snapshot(snapshot: Snapshot): void;
  /** The caller may not see counts now (`join` answer, or `poll-closed` while hidden). */
  hidden(info: HiddenResults): void;
  /** Screens joined to the poll (`poll-presence`). */
  presence?(viewers: number): void;
  /** `join` was refused (unknown poll, invalid token, ...). */
  failed?(error: ErrorBody): void;
}

/** The token to join with, read at every (re)join so that a refreshed one is used. */
export type TokenSource = () => Promise<string | null>;

interface Room {
  token: TokenSource;
  listeners: Set<RoomEvents>;
  /** Joins in flight are numbered so that only the answer to the newest one is used. */
  attempt: number;
}

const JOIN_TIMEOUT_MS = 10_000;
const JOIN_RETRY_MS = 2_000;

/**
 * Where realtime-service is: the `content` of `<meta name="pollstream-realtime-url">` when
 * the server filled it in with an http(s) URL, else this page's origin (a proxy in front of
 * both services routes `/socket.io`).
 */
export function realtimeUrl(metaContent: string | null | undefined, origin: string): string {
  const value = metaContent?.trim();
  if (!value) return origin;
  try {
    const url = new URL(value, origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : origin;
  } catch {
    return origin;
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === 'object' && value !== null && typeof (value as ErrorBody).error === 'string';
}

function isHidden(value: unknown): value is HiddenResults {
  return typeof value === 'object' && value !== null && (value as HiddenResults).hidden === true;
}

function isSnapshot(value: unknown): value is Snapshot {
  const s = value as Snapshot;
  return typeof s === 'object' && s !== null && typeof s.seq === 'number' && Array.isArray(s.options);
}

export class LiveConnection {
  private readonly socket: Socket;
  private readonly rooms = new Map<string, Room>();
  private readonly stateListeners = new Set<(state: LinkState) => void>();
  private linkState: LinkState = 'connecting';

  constructor(url: string) {
    this.socket = io(url, { path: '/socket.io', autoConnect: false, reconnectionDelayMax: 5_000 });
    this.socket.on('connect', () => {
      this.setState('online');
      for (const pollId of this.rooms.keys()) this.join(pollId);
    });
    this.socket.on('disconnect', (reason) => {
      this.setState('reconnecting');
      // The server ended this socket on purpose; Socket.IO does not retry that by itself.
      if (reason === 'io server disconnect') this.socket.connect();
    });
    this.socket.on('connect_error', () => {
      if (this.linkState === 'online') this.setState('reconnecting');
    });
    this.socket.on('poll-results', (payload: unknown) => {
      if (isSnapshot(payload)) this.each(payload.pollId, (events) => events.snapshot(payload));
    });
    this.socket.on('poll-closed', (payload: unknown) => {
      if (isHidden(payload)) this.each(payload.pollId, (events) => events.hidden(payload));
      else if (isSnapshot(payload)) this.each(payload.pollId, (events) => events.snapshot(payload));
    });
    this.socket.on('poll-presence', (payload: Presence) => {
      if (typeof payload?.viewers === 'number') this.each(payload.pollId, (events) => events.presence?.(payload.viewers));
    });
    this.socket.connect();
  }

  get state(): LinkState {
    return this.linkState;
  }

  onState(listener: (state: LinkState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Follows one poll until the returned function is called. */
  watch(pollId: string, token: TokenSource, events: RoomEvents): () => void {
    let room = this.rooms.get(pollId);
    if (!room) {
      room = { token, listeners: new Set(), attempt: 0 };
      this.rooms.set(pollId, room);
    }
    room.token = token;
    room.listeners.add(events);
    if (this.socket.connected) this.join(pollId);
    return () => {
      const current = this.rooms.get(pollId);
      if (!current) return;
      current.listeners.delete(events);
      if (current.listeners.size === 0) {
        this.rooms.delete(pollId);
        if (this.socket.connected) this.socket.emit('leave', { pollId });
      }
    };
  }

  /** Joins a poll's room again, e.g. with a token the page did not have before. */
  rejoin(pollId: string): void {
    if (this.socket.connected && this.rooms.has(pollId)) this.join(pollId);
  }

  private async join(pollId: string): Promise<void> {
    const room = this.rooms.get(pollId);
    if (!room) return;
    const attempt = ++room.attempt;
    const token = await room.token().catch(() => null);
    if (room.attempt !== attempt || !this.socket.connected) return;
    const request = token ? { pollId, token } : { pollId };
    this.socket.timeout(JOIN_TIMEOUT_MS).emit('join', request, (err: Error | null, reply: unknown) => {
      if (this.rooms.get(pollId) !== room || room.attempt !== attempt) return;
      if (err) {
        // No answer in time: ask again while the link is up (a reconnect rejoins anyway).
        setTimeout(() => {
          if (room.attempt === attempt) this.join(pollId);
        }, JOIN_RETRY_MS);
        return;
      }
      if (isHidden(reply)) this.each(pollId, (events) => events.hidden(reply));
      else if (isSnapshot(reply)) this.each(pollId, (events) => events.snapshot(reply));
      else if (isErrorBody(reply)) this.each(pollId, (events) => events.failed?.(reply));
    });
  }

  private each(pollId: string, deliver: (events: RoomEvents) => void): void {
    for (const events of this.rooms.get(pollId)?.listeners ?? []) deliver(events);
  }

  private setState(state: LinkState): void {
    if (state === this.linkState) return;
    this.linkState = state;
    for (const listener of this.stateListeners) listener(state);
  }
}
