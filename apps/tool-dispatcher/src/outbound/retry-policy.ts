import { backOff, type BackoffOptions } from 'exponential-backoff';

/**
 * Delivery of an async invocation (CONTRACT.md §6): 3 attempts in all, exponential
 * backoff from 200 ms, doubling, capped at 2 s, full jitter (each pause is uniform in
 * [0, cap]). The first attempt goes at once.
 */
export const DISPATCH_RETRY: Readonly<BackoffOptions> = Object.freeze({
  numOfAttempts: 3,
  startingDelay: 200,
  timeMultiple: 2,
  maxDelay: 2_000,
  jitter: 'full',
  delayFirstAttempt: false,
});

/** Cancel notices are best effort, retried once (CONTRACT.md §6). */
export const CANCEL_NOTICE_RETRY: Readonly<BackoffOptions> = Object.freeze({
  ...DISPATCH_RETRY,
  numOfAttempts: 2,
});

/** The largest pause before attempt `n` (2, 3, …) under a policy: the full-jitter ceiling. */
export function maxDelayBeforeAttempt(policy: Readonly<BackoffOptions>, attempt: number): number {
  if (attempt <= 1) return 0;
  const start = policy.startingDelay ?? 100;
  const multiple = policy.timeMultiple ?? 2;
  return Math.min(start * multiple ** (attempt - 2), policy.maxDelay ?? Infinity);
}

/**
 * Runs `attempt` under a policy; `shouldRetry` may stop early (a refused address will
 * not become acceptable by trying again). The last error is rethrown.
 */
export function withRetries<T>(
  policy: Readonly<BackoffOptions>,
  attempt: (attemptNumber: number) => Promise<T>,
  shouldRetry: (error: unknown) => boolean = () => true,
): Promise<T> {
  let attemptNumber = 0;
  return backOff(() => attempt(++attemptNumber), { ...policy, retry: (error) => shouldRetry(error) });
}

/**
 * Registration at the token authority over request–reply: a lost reply or a broker
 * blip is retried with the same `idempotency_key`, so it never registers twice.
 */
export const REGISTRATION_RETRY: Readonly<BackoffOptions> = Object.freeze({
  numOfAttempts: 3,
  startingDelay: 100,
  timeMultiple: 2,
  maxDelay: 1_000,
  jitter: 'full',
  delayFirstAttempt: false,
});
