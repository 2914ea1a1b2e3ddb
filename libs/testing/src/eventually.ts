export interface EventuallyOptions {
  /** Give up after this long. Default 10 000 ms. */
  timeoutMs?: number;
  /** Pause between attempts. Default 20 ms. */
  intervalMs?: number;
  /** Prefixed to the last error's message on timeout, to say what was awaited. */
  message?: string;
}

/**
 * Retries `probe` until it stops throwing, then returns its value. A probe says "not yet"
 * by throwing (typically an `expect(...)` inside it); whatever it returns, falsy values
 * included, counts as success. This is the one place tests wait for asynchronous effects:
 * polling with a deadline instead of fixed sleeps keeps them both fast and robust on a slow
 * machine.
 *
 * On timeout the last error is rethrown (same object, so a jest matcher's diff survives)
 * with `message` prefixed. A probe that hangs is cut off at the deadline as well.
 */
export async function eventually<T>(probe: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  // Replaced by the probe's own error as soon as one attempt fails.
  let lastError: unknown = new Error('the probe was still running at the deadline');

  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - Date.now();
    // At least one attempt, even with a zero timeout.
    if (remaining <= 0 && attempt > 0) break;
    try {
      return await withDeadline(probe, Math.max(remaining, 1));
    } catch (err) {
      if (err === HUNG) break;
      lastError = err;
    }
    // Never sleep past the deadline; the loop's check then ends it.
    await delay(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  throw prefixed(lastError, `${opts.message ?? 'condition'} not met within ${timeoutMs} ms`);
}

const HUNG = new Error('probe hung');

function withDeadline<T>(probe: () => T | Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(HUNG), ms);
    // Promise.resolve().then(...) turns a synchronous throw into a rejection.
    Promise.resolve()
      .then(probe)
      .then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function prefixed(err: unknown, prefix: string): Error {
  if (err instanceof Error) {
    const original = err.message;
    err.message = `${prefix}: ${original}`;
    // The stack was rendered at construction time with the old message in its first line.
    if (typeof err.stack === 'string' && original && err.stack.includes(original)) {
      err.stack = err.stack.replace(original, err.message);
    }
    return err;
  }
  return new Error(`${prefix}: ${String(err)}`, { cause: err });
}
