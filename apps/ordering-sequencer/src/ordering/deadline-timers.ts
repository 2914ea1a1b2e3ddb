/**
 * In-memory timers for the deadlines of the partitions this replica owns. They are an
 * optimisation: the deadline itself is in every registration, so a replica that takes
 * over a partition rebuilds them from the stored states (CONTRACT.md §2: `expires_at`).
 */
export class DeadlineTimers {
  private readonly timers = new Map<string, { partition: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly now: () => number,
    private readonly onDeadline: (workItemId: string, conversationId: string, partition: number) => void,
  ) {}

  schedule(partition: number, conversationId: string, workItemId: string, expiresAt: string): void {
    this.clear(workItemId);
    // Node timers hold at most ~24.8 days; deadlines are at most an hour away.
    const delayMs = Math.max(0, Date.parse(expiresAt) - this.now());
    const timer = setTimeout(() => {
      this.timers.delete(workItemId);
      this.onDeadline(workItemId, conversationId, partition);
    }, delayMs);
    timer.unref();
    this.timers.set(workItemId, { partition, timer });
  }

  clear(workItemId: string): void {
    const entry = this.timers.get(workItemId);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.timers.delete(workItemId);
  }

  clearPartition(partition: number): void {
    for (const [workItemId, entry] of this.timers) {
      if (entry.partition === partition) this.clear(workItemId);
    }
  }

  clearAll(): void {
    for (const workItemId of [...this.timers.keys()]) this.clear(workItemId);
  }

  get size(): number {
    return this.timers.size;
  }
}
