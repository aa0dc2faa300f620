/** The voting-api routes this app uses, one function each. */

import { apiRequest } from './http';
import type {
  AccountTokens,
  CastVote,
  Credentials,
  GuestTokens,
  MyPoll,
  MyVote,
  NewPoll,
  Poll,
  RefreshRequest,
  VoteAccepted,
} from './types';

const code = (value: string) => encodeURIComponent(value);

export const auth = {
  register: (email: string, password: string) =>
    apiRequest<AccountTokens>('/api/v1/auth/register', { body: { email, password } satisfies Credentials }),
  login: (email: string, password: string) =>
    apiRequest<AccountTokens>('/api/v1/auth/login', { body: { email, password } satisfies Credentials }),
  refresh: (refreshToken: string) =>
    apiRequest<AccountTokens>('/api/v1/auth/refresh', { body: { refreshToken } satisfies RefreshRequest }),
  logout: (refreshToken: string) =>
    apiRequest<void>('/api/v1/auth/logout', { body: { refreshToken } satisfies RefreshRequest, expect: 'none' }),
  guest: () => apiRequest<GuestTokens>('/api/v1/auth/guest', { method: 'POST' }),
};

export const polls = {
  get: (pollCode: string, signal?: AbortSignal) =>
    apiRequest<Poll>(`/api/v1/polls/${code(pollCode)}`, signal ? { signal } : {}),
  mine: (token: string) => apiRequest<MyPoll[]>('/api/v1/polls/mine?limit=100', { token }),
  create: (poll: NewPoll, token: string) => apiRequest<Poll>('/api/v1/polls', { body: poll, token }),
  close: (pollCode: string, token: string) =>
    apiRequest<Poll>(`/api/v1/polls/${code(pollCode)}/close`, { method: 'POST', token }),
  remove: (pollCode: string, token: string) =>
    apiRequest<void>(`/api/v1/polls/${code(pollCode)}`, { method: 'DELETE', token, expect: 'none' }),
  ballotsCsv: (pollCode: string, token: string) =>
    apiRequest<Blob>(`/api/v1/polls/${code(pollCode)}/ballots.csv`, { token, expect: 'blob' }),
};

export const votes = {
  cast: (pollCode: string, optionIds: string[], token: string) =>
    apiRequest<VoteAccepted>(`/api/v1/votes/${code(pollCode)}`, {
      body: { optionIds } satisfies CastVote,
      token,
    }),
  mine: (pollCode: string, token: string) => apiRequest<MyVote>(`/api/v1/votes/${code(pollCode)}/me`, { token }),
};
