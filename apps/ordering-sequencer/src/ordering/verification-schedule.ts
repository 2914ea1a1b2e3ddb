/** An outstanding work item to look up in the work log. */
export interface DueVerification {
  partition: number;
  conversationId: string;
  workItemId: string;
}

/** When an outstanding item is looked up in the work log, after this replica first held it (then every 20 min). */
export const VERIFY_AFTER_MS: readonly number[] = [10_000, 60_000, 300_000, 1_200_000];
/** How often the head of a conversation holding results behind it is looked up. */
export const VERIFY_BLOCKING_EVERY_MS = 5_000;
/**
 * Lookups per round (a round a second), at most: a wave of items registered together
 * comes due together, and thousands of reads at once would compete with the live traffic
 * for the broker. Past the budget, lookups wait for the next rounds; most items have ended
 * by then and cost nothing.
 */
export const VERIFY_LOOKUPS_PER_ROUND = 200;

interface Entry extends DueVerification {
  step: number;
  nextAt: number;
}

/**
 * When outstanding work items are looked up in the work log (the repair of deliveries the
 * broker skipped, docs/reliability.md): each item `VERIFY_AFTER_MS` after this replica
 * first held it (10 s, 1 min, 5 min, 20 min, then every 20 min until it ends), and the head of a conversation holding results every
 * `VERIFY_BLOCKING_EVERY_MS`, at most `VERIFY_LOOKUPS_PER_ROUND` a round. A round costs
 * what is due, not what is held: one FIFO per
 * step (the same delay for every entry of a step keeps each in time order), so 100,000
 * conversations with their items cost nothing between their lookups.
 */
export class VerificationSchedule {
  private readonly steps: Entry[][] = VERIFY_AFTER_MS.map(() => []);
  /** Where each step's FIFO starts (entries before it were taken). */
  private readonly heads: number[] = VERIFY_AFTER_MS.map(() => 0);
  private readonly tracked = new Map<string, Entry>();
  private readonly lastLookup = new Map<string, number>();

  /** An outstanding item this replica now holds; tracking it again changes nothing. */
  track(item: DueVerification, now: number): void {
    if (this.tracked.has(item.workItemId)) return;
    const entry: Entry = { ...item, step: 0, nextAt: now + VERIFY_AFTER_MS[0] };
    this.tracked.set(item.workItemId, entry);
    this.steps[0].push(entry);
  }

  /**
   * The lookups due now. `isOutstanding` drops entries whose item ended or is no longer
   * held here (forgotten lazily, when they come due); `blockingHeads` are the heads of the
   * conversations holding results now.
   */
  due(
    now: number,
    isOutstanding: (entry: DueVerification) => boolean,
    blockingHeads: Iterable<DueVerification>,
  ): DueVerification[] {
    const due: DueVerification[] = [];
    // Heads first: results wait behind them now.
    for (const head of blockingHeads) {
      if (due.length >= VERIFY_LOOKUPS_PER_ROUND) return due;
      const last = this.lastLookup.get(head.workItemId) ?? Number.NEGATIVE_INFINITY;
      if (now - last < VERIFY_BLOCKING_EVERY_MS) continue;
      this.lastLookup.set(head.workItemId, now);
      due.push(head);
    }
    for (let step = 0; step < this.steps.length; step++) {
      for (let entry = this.peek(step); entry && entry.nextAt <= now; entry = this.peek(step)) {
        if (due.length >= VERIFY_LOOKUPS_PER_ROUND) return due; // the rest waits for the next round
        this.take(step);
        if (this.tracked.get(entry.workItemId) !== entry) continue; // forgotten meanwhile
        if (!isOutstanding(entry)) {
          this.forget(entry.workItemId);
          continue;
        }
        due.push(entry);
        this.lastLookup.set(entry.workItemId, now);
        // After the last step, again at the last step's interval, until the item ends.
        const next = Math.min(step + 1, this.steps.length - 1);
        entry.step = next;
        entry.nextAt = now + VERIFY_AFTER_MS[next];
        this.steps[next].push(entry);
      }
    }
    return due;
  }

  /** An item that ended: nothing more to look up. */
  forget(workItemId: string): void {
    this.tracked.delete(workItemId);
    this.lastLookup.delete(workItemId);
  }

  get size(): number {
    return this.tracked.size;
  }

  private peek(step: number): Entry | undefined {
    return this.steps[step][this.heads[step]];
  }

  private take(step: number): void {
    this.heads[step] += 1;
    // Compact now and then, so a long-lived FIFO does not keep what it gave out.
    if (this.heads[step] >= 1_024 && this.heads[step] * 2 >= this.steps[step].length) {
      this.steps[step] = this.steps[step].slice(this.heads[step]);
      this.heads[step] = 0;
    }
  }
}
