import type { TranscriptEntry } from './transcript.store.js';

/** What an append needs of a transcript's last entry: where it is, and what it carries forward. */
export interface TranscriptTail {
  /** Stream sequence of the last entry: the compare-and-set handle of the next append (0: empty). */
  seq: number;
  position: number;
  appliedReleaseIndex: number;
  /** Set when the tail was read from the broker: the entry itself (to publish it live again). */
  entry?: TranscriptEntry;
}

export function tailOf(entry: TranscriptEntry | null): TranscriptTail {
  if (!entry) return { seq: 0, position: 0, appliedReleaseIndex: 0 };
  return {
    seq: entry.seq,
    position: entry.record.position,
    appliedReleaseIndex: entry.record.applied_release_index,
    entry,
  };
}

/**
 * The last entry of the transcripts this replica appended to, so an append needs no read
 * first. Only a hint: every append is still compare-and-set on the tail's sequence, so a
 * stale tail (another replica or request appended meanwhile) costs one retry after a read.
 */
export class TranscriptTails {
  private readonly tails = new Map<string, TranscriptTail>();

  constructor(private readonly maxEntries = 100_000) {}

  get(conversationId: string): TranscriptTail | undefined {
    return this.tails.get(conversationId);
  }

  set(conversationId: string, tail: TranscriptTail): void {
    this.tails.delete(conversationId);
    // Never the entry itself in the cache: results can be 256 KiB.
    this.tails.set(conversationId, {
      seq: tail.seq,
      position: tail.position,
      appliedReleaseIndex: tail.appliedReleaseIndex,
    });
    if (this.tails.size > this.maxEntries) {
      const oldest = this.tails.keys().next().value;
      if (oldest !== undefined) this.tails.delete(oldest);
    }
  }

  delete(conversationId: string): void {
    this.tails.delete(conversationId);
  }
}
