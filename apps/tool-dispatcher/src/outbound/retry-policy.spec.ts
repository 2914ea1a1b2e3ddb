import { describe, expect, it } from '@jest/globals';
import { CANCEL_NOTICE_RETRY, DISPATCH_RETRY, maxDelayBeforeAttempt, withRetries } from './retry-policy.js';

describe('retry policy', () => {
  it('dispatch: 3 attempts, backoff from 200 ms doubling to a 2 s cap, full jitter, first attempt at once (CONTRACT.md §6)', () => {
    expect(DISPATCH_RETRY).toEqual({
      numOfAttempts: 3,
      startingDelay: 200,
      timeMultiple: 2,
      maxDelay: 2_000,
      jitter: 'full',
      delayFirstAttempt: false,
    });
    expect([1, 2, 3, 4, 5, 6, 7].map((attempt) => maxDelayBeforeAttempt(DISPATCH_RETRY, attempt))).toEqual([
      0, 200, 400, 800, 1_600, 2_000, 2_000,
    ]);
  });

  it('cancel notices: retried once', () => {
    expect(CANCEL_NOTICE_RETRY.numOfAttempts).toBe(2);
  });

  it('runs the attempts with pauses under the ceilings and rethrows the last error', async () => {
    const times: number[] = [];
    const sut = withRetries(DISPATCH_RETRY, (attempt) => {
      times.push(performance.now());
      return Promise.reject(new Error(`attempt ${attempt}`));
    });
    await expect(sut).rejects.toThrow('attempt 3');
    expect(times).toHaveLength(3);
    // Full jitter: each pause is anywhere in [0, ceiling]; timers may run a little late.
    expect(times[1] - times[0]).toBeLessThan(200 + 300);
    expect(times[2] - times[1]).toBeLessThan(400 + 300);
  });

  it('stops at once when shouldRetry says so, and returns the first success', async () => {
    let calls = 0;
    await expect(
      withRetries(
        DISPATCH_RETRY,
        () => {
          calls++;
          return Promise.reject(new Error('refused'));
        },
        () => false,
      ),
    ).rejects.toThrow('refused');
    expect(calls).toBe(1);
    expect(await withRetries(DISPATCH_RETRY, (attempt) => Promise.resolve(attempt))).toBe(1);
  });
});
