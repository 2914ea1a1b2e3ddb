import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from '@backchannel/contracts';
import { invalidHeader, invalidParameter } from '../errors.js';

/** A position or count in a query string: digits only, no sign, no exponent. */
const WHOLE_NUMBER = /^\d{1,15}$/;

export interface PageQuery {
  after: number;
  limit: number;
}

/** `?after=&limit=` of the transcript read (CONTRACT.md §4), or 400 naming the parameter. */
export function parsePageQuery(query: Record<string, unknown>): PageQuery {
  return {
    after: parsePosition(query.after, 'after') ?? 0,
    limit: parseLimit(query.limit),
  };
}

/**
 * Where a live follow resumes (CONTRACT.md §4): `Last-Event-ID` (sent by a reconnecting
 * EventSource, so it is the fresher of the two) else `?after=`; undefined: start live.
 */
export function parseResumePoint(lastEventId: unknown, after: unknown): number | undefined {
  if (lastEventId !== undefined && lastEventId !== '') {
    if (typeof lastEventId !== 'string' || !WHOLE_NUMBER.test(lastEventId.trim())) {
      throw invalidHeader('last-event-id', 'Last-Event-ID must be a message position (a whole number)');
    }
    return Number(lastEventId.trim());
  }
  return parsePosition(after, 'after');
}

function parsePosition(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !WHOLE_NUMBER.test(value)) {
    throw invalidParameter(name, `${name} must be a whole number (a message position, 0 or more)`);
  }
  return Number(value);
}

function parseLimit(value: unknown): number {
  if (value === undefined) return DEFAULT_PAGE_LIMIT;
  const limit = typeof value === 'string' && WHOLE_NUMBER.test(value) ? Number(value) : NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE_LIMIT)) {
    throw invalidParameter('limit', `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}`);
  }
  return limit;
}
