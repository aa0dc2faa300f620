/**
 * Shapes of the voting-api and realtime-service payloads this app reads and sends.
 *
 * The HTTP shapes are voting-api's own, from `schema.d.ts`: `npm run gen:api` generates it
 * with openapi-typescript from `openapi.json`, the document voting-api serves at
 * `/api/v1/openapi.json`. voting-api's test `web_openapi_copy` fails when that copy falls
 * behind the service, and `tests/unit/api-schema.test.ts` when `schema.d.ts` falls behind
 * the copy. The Socket.IO payloads are in no OpenAPI document; they stay written here, each
 * naming the Rust shape it copies.
 */

import type { components } from './schema';

type Schemas = components['schemas'];

export type PollKind = Schemas['PollKind'];
export type PollStatus = Schemas['PollStatus'];
export type ResultsVisibility = Schemas['ResultsVisibility'];
export type PollOption = Schemas['PollOption'];

/** `GET /api/v1/polls/{code}`: a poll without counts. */
export type Poll = Schemas['PollView'];

/** Body of `POST /api/v1/polls`. `allowGuests` is sent only as `false`, so servers that predate it refuse such a poll. */
export type NewPoll = Schemas['NewPoll'];

/** One row of `GET /api/v1/polls/mine`. */
export type MyPoll = Schemas['PollSummary'];

/** `GET /api/v1/votes/{code}/me`: `status` is `none`, `pending` or `counted`. */
export type MyVote = Schemas['MyVote'];

/** Body of `POST /api/v1/votes/{code}`. */
export type CastVote = Schemas['CastVote'];

/** Answer of an accepted vote (`202`). */
export type VoteAccepted = Schemas['VoteAccepted'];

/** Body of `/api/v1/auth/register` and `/login`. */
export type Credentials = Schemas['Credentials'];

/** Body of `/api/v1/auth/refresh` and `/logout`. */
export type RefreshRequest = Schemas['RefreshRequest'];

/** Answer of `/api/v1/auth/register`, `/login` and `/refresh`. */
export type AccountTokens = Schemas['Session'];

/** Answer of `/api/v1/auth/guest`. */
export type GuestTokens = Schemas['GuestSession'];

/** Every error of the API and of a Socket.IO acknowledgement (`pollstream_wire::ErrorBody`). */
export type ErrorBody = Schemas['ErrorBody'];

/** One option's count in a snapshot: `pollstream_wire::OptionCount` (libs/wire/src/lib.rs). */
export interface OptionCount {
  optionId: string;
  votes: number;
}

/**
 * A full count of one poll; `seq` only grows. Sent as `poll-results` and `poll-closed`:
 * `pollstream_wire::PollSnapshot` (libs/wire/src/lib.rs), whose schema version `v` this app
 * does not read.
 */
export interface Snapshot {
  pollId: string;
  seq: number;
  /** Ballots, i.e. voters; in a multiple-choice poll the options add up to more. */
  total: number;
  status: PollStatus;
  options: OptionCount[];
  at?: string;
}

/**
 * What `join` answers, and `poll-closed` sends, while the caller may not see counts: the
 * `json!` objects of realtime-service's `socket_handlers.rs` (join) and `broadcast.rs` (close).
 */
export interface HiddenResults {
  pollId: string;
  status: PollStatus;
  hidden: true;
  resultsVisibility?: ResultsVisibility;
}

/** `poll-presence`: screens joined to the poll across all realtime replicas (`pollstream_wire::PollPresence`). */
export interface Presence {
  pollId: string;
  viewers: number;
}
