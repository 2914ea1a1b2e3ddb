/**
 * A tiny semaphore: at most `max` tasks run at once, the rest wait in arrival order.
 * It bounds the dispatcher's outbound requests across every origin
 * (`DISPATCHER_MAX_CONCURRENCY`), which undici's per-origin `connections` cannot.
 */
export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly max: number,
    private readonly onChange: (active: number) => void = () => undefined,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new Error('max must be a positive integer');
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      this.onChange(this.active);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter: `active` stays the same.
    if (next) next();
    else {
      this.active--;
      this.onChange(this.active);
    }
  }
}
