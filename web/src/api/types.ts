/** Shapes of the voting-api and realtime-service payloads this app reads and sends. */

export type PollKind = 'single' | 'multiple';
export type PollStatus = 'open' | 'closed';
export type ResultsVisibility = 'always' | 'after_vote' | 'after_close' | 'owner_only';

export interface PollOption {
  id: string;
  text: string;
}

/** `GET /api/v1/polls/{code}`: a poll without counts. */
export interface Poll {
  id: string;
  code: string;
  question: string;
  kind: PollKind;
  minChoices: number;
  maxChoices: number;
  resultsVisibility: ResultsVisibility;
  status: PollStatus;
  closesAt: string | null;
  closedAt: string | null;
  createdAt: string;
  options: PollOption[];
  /** Whether guests may vote; absent from older servers, where they always may. */
  allowGuests?: boolean;
}

/** Body of `POST /api/v1/polls`. */
export interface NewPoll {
  question: string;
  options: string[];
  kind: PollKind;
  minChoices?: number;
  maxChoices?: number;
  closesAt?: string;
  resultsVisibility: ResultsVisibility;
  /** Default `true`; sent only as `false` (servers that predate it refuse unknown fields). */
  allowGuests?: boolean;
}

/** One row of `GET /api/v1/polls/mine`. */
export interface MyPoll {
  id: string;
  code: string;
  question: string;
  status: PollStatus;
  total: number;
  createdAt: string;
  closesAt: string | null;
}

/** `GET /api/v1/votes/{code}/me`. */
export interface MyVote {
  status: 'none' | 'pending' | 'counted';
  voteId: string | null;
  optionIds: string[];
  castAt: string | null;
  countedAt: string | null;
}

/** Answer of `/api/v1/auth/register`, `/login` and `/refresh`. */
export interface AccountTokens {
  userId: string;
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  /** Seconds until the access token expires. */
  expiresIn: number;
}

/** Answer of `/api/v1/auth/guest`. */
export interface GuestTokens {
  subject: string;
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

/** Every error of the API and of a Socket.IO acknowledgement. */
export interface ErrorBody {
  error: string;
  message: string;
}

export interface OptionCount {
  optionId: string;
  votes: number;
}

/** A full count of one poll; `seq` only grows. Sent as `poll-results` and `poll-closed`. */
export interface Snapshot {
  pollId: string;
  seq: number;
  /** Ballots, i.e. voters; in a multiple-choice poll the options add up to more. */
  total: number;
  status: PollStatus;
  options: OptionCount[];
  at?: string;
}

/** What `join` answers, and `poll-closed` sends, while the caller may not see counts. */
export interface HiddenResults {
  pollId: string;
  status: PollStatus;
  hidden: true;
  resultsVisibility?: ResultsVisibility;
}

/** `poll-presence`: screens joined to the poll across all realtime replicas. */
export interface Presence {
  pollId: string;
  viewers: number;
}
