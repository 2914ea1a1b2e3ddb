import { describe, expect, it } from '@jest/globals';
import { ConcurrencyLimit } from './concurrency-limit.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

describe('ConcurrencyLimit', () => {
  it('runs at most max tasks at once, the rest in arrival order, and reports the count', async () => {
    const reported: number[] = [];
    const sut = new ConcurrencyLimit(2, (active) => reported.push(active));
    const gates = [deferred(), deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((gate, index) =>
      sut.run(async () => {
        started.push(index);
        await gate.promise;
        return index;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(sut.queued).toBe(2);
    gates[1].resolve();
    await runs[1];
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]);
    for (const gate of gates) gate.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(sut.inFlight).toBe(0);
    expect(Math.max(...reported)).toBe(2);
    expect(reported.at(-1)).toBe(0);
  });

  it('frees the slot when a task fails', async () => {
    const sut = new ConcurrencyLimit(1);
    await expect(sut.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await sut.run(() => Promise.resolve('next'))).toBe('next');
  });
});
