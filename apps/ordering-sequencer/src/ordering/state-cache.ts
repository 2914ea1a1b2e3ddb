import type { ConversationOrderState } from './release-order.js';

interface Entry {
  value: ConversationOrderState;
  revision: number;
  partition: number;
}

/**
 * The sequencer's read-through cache of conversation states, bounded by count (oldest
 * written first out). Only an optimisation: every write is still a compare-and-set on
 * the cached revision, so a stale entry is detected and dropped, never trusted.
 */
export class StateCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries: number) {}

  get(conversationId: string): Entry | undefined {
    return this.entries.get(conversationId);
  }

  set(conversationId: string, entry: Entry): void {
    this.entries.delete(conversationId);
    this.entries.set(conversationId, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  delete(conversationId: string): void {
    this.entries.delete(conversationId);
  }

  deletePartition(partition: number): void {
    for (const [conversationId, entry] of this.entries) {
      if (entry.partition === partition) this.entries.delete(conversationId);
    }
  }
}
