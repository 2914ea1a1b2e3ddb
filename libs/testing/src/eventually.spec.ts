import { describe, expect, it } from '@jest/globals';

import { eventually } from './eventually.js';

describe('eventually', () => {
  it('retries until the probe stops throwing and returns its value', async () => {
    let calls = 0;
    const value = await eventually(() => {
      calls += 1;
      if (calls < 3) throw new Error('not yet');
      return calls;
    });
    expect(value).toBe(3);
  });

  it('treats a falsy return as success', async () => {
    await expect(eventually(() => 0)).resolves.toBe(0);
  });

  it('rethrows the last error, prefixed, at the deadline', async () => {
    const err = await eventually(
      () => {
        throw new Error('still 2 messages');
      },
      { timeoutMs: 100, message: 'stream drained' },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('stream drained not met within 100 ms: still 2 messages');
  });

  it('cuts off a probe that hangs', async () => {
    const started = Date.now();
    await expect(eventually(() => new Promise(() => undefined), { timeoutMs: 100 })).rejects.toThrow(
      /still running at the deadline/,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
