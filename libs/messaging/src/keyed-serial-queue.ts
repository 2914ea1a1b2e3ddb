/**
 * Runs tasks one at a time per key and concurrently across keys: one conversation's
 * events stay in order while different conversations of a partition proceed side by
 * side. A task must settle (the caller retries inside it); a rejection is passed to
 * the caller's promise and does not stop later tasks of the key.
 */
export class KeyedSerialQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Queues `task` behind every task already queued under `key`. */
  run(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.tails.get(key);
    const result = previous ? previous.then(task) : task();
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a task queued or running. */
  get activeKeys(): number {
    return this.tails.size;
  }

  /** Settles once every task queued so far has settled. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
