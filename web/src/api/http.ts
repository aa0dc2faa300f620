/**
 * One way to call voting-api: JSON in, JSON out, and every failure an {@link ApiError}
 * carrying the API's stable `error` code and its human `message`.
 */

import type { ErrorBody } from './types';

/** A failed request: the API's answer, or a network failure (`status` 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds the API asked to wait before retrying (`Retry-After`), if it did. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  token?: string | null;
  signal?: AbortSignal;
  /** What to read from a successful answer. */
  expect?: 'json' | 'blob' | 'none';
}

function isErrorBody(value: unknown): value is ErrorBody {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ErrorBody).error === 'string' &&
    typeof (value as ErrorBody).message === 'string'
  );
}

/** Sends one request to the API on this page's origin. */
export async function apiRequest<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
  }
  if (!response.ok) throw await errorFrom(response);
  switch (options.expect ?? 'json') {
    case 'none':
      return undefined as T;
    case 'blob':
      return (await response.blob()) as T;
    default:
      return (response.status === 204 ? undefined : await response.json()) as T;
  }
}

async function errorFrom(response: Response): Promise<ApiError> {
  const retryAfter = Number(response.headers.get('Retry-After')) || null;
  try {
    const body: unknown = await response.json();
    if (isErrorBody(body)) return new ApiError(response.status, body.error, body.message, retryAfter);
  } catch {
    // Not JSON: a proxy in front of the API answered.
  }
  return new ApiError(response.status, 'http_' + response.status, `The server answered ${response.status} ${response.statusText}.`.replace(' .', '.'), retryAfter);
}

/** A message to show for any error thrown by a request. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return 'Something went wrong.';
}
