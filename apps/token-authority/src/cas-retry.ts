import { backOff } from 'exponential-backoff';
import { ApiError } from '@backchannel/contracts';

/** A compare-and-set round lost to a concurrent writer: read again and retry. */
export class CasConflict extends Error {
  constructor() {
    super('compare-and-set conflict');
  }
}

/**
 * Retries compare-and-set rounds with exponential backoff and full jitter, so a hundred
 * registrations racing on one conversation spread out instead of colliding in lock-step.
 * Only a conflict is retried; any other error (404, 410, broker down) ends at once.
 */
export async function withCasRetries<T>(round: () => Promise<T>): Promise<T> {
  try {
    return await backOff(round, {
      numOfAttempts: 200,
      startingDelay: 1,
      timeMultiple: 2,
      maxDelay: 25,
      jitter: 'full',
      retry: (error) => error instanceof CasConflict,
    });
  } catch (error) {
    if (!(error instanceof CasConflict)) throw error;
    throw new ApiError('unavailable', 'too much contention on this conversation; retry', {
      headers: { 'retry-after': '1' },
    });
  }
}
