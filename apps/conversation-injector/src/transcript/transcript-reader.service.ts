import { Injectable } from '@nestjs/common';
import { MAX_PAGE_BYTES, type InjectedMessage } from '@backchannel/contracts';
import { EMPTY_PAGE_BYTES, addToPage, toInjectedMessage } from './transcript-record.js';
import { TranscriptStore, type TranscriptEntry } from './transcript.store.js';

/** A page of the transcript (CONTRACT.md §4). */
export interface TranscriptPage {
  messages: InjectedMessage[];
  /** Position of the last message of the page, or null when it is empty. */
  next_after: number | null;
}

/**
 * Reads a conversation's transcript by position. Positions rise with stream sequences, so
 * the first wanted entry is found by bisecting stream sequences with direct gets
 * (`next_by_subj`), then the page is read entry by entry from there.
 */
@Injectable()
export class TranscriptReader {
  constructor(private readonly store: TranscriptStore) {}

  /** The position of the last message, 0 when the transcript is empty. */
  async lastPosition(conversationId: string): Promise<number> {
    return (await this.store.last(conversationId))?.record.position ?? 0;
  }

  /** Up to `limit` messages after position `after`, stopping before the page passes `maxBytes` of JSON. */
  async page(conversationId: string, after: number, limit: number, maxBytes = MAX_PAGE_BYTES): Promise<TranscriptPage> {
    const messages: InjectedMessage[] = [];
    if (limit <= 0) return { messages, next_after: null };
    let pageBytes: number | null = EMPTY_PAGE_BYTES;
    await this.scan(conversationId, after, (entry) => {
      const message = toInjectedMessage(entry.record);
      pageBytes = addToPage(pageBytes!, messages.length, jsonBytes(message), maxBytes);
      if (pageBytes === null) return false;
      messages.push(message);
      return messages.length < limit;
    });
    return { messages, next_after: messages.at(-1)?.position ?? null };
  }

  /** Every stored entry after position `after`, up to the last one now (rare paths: idempotency recovery). */
  async entriesAfter(conversationId: string, after: number): Promise<TranscriptEntry[]> {
    const entries: TranscriptEntry[] = [];
    await this.scan(conversationId, after, (entry) => entries.push(entry) > 0);
    return entries;
  }

  /**
   * Visits entries after position `after` in order, up to the last one now, while `visit`
   * says go on: one direct get (`next_by_subj`) per entry. (An ordered consumer per read
   * was measured slower on nats-server 2.9: see docs/injector.md.)
   */
  private async scan(conversationId: string, after: number, visit: (entry: TranscriptEntry) => boolean): Promise<void> {
    const last = await this.store.last(conversationId);
    if (!last || last.record.position <= after) return;
    let entry = await this.seek(conversationId, after + 1, last);
    while (entry && visit(entry) && entry.seq < last.seq) {
      entry = await this.store.nextFrom(conversationId, entry.seq + 1);
    }
  }

  /**
   * The entry at `position`, or the first one after it when it has aged out. Entry `p` sits
   * at a sequence ≥ p (each earlier entry took one) and ≤ last.seq − (last.position − p)
   * (each later one takes one), which bounds the bisection: a conversation that has the stream
   * to itself is found at once.
   */
  private async seek(conversationId: string, position: number, last: TranscriptEntry): Promise<TranscriptEntry | null> {
    if (position >= last.record.position) return last;
    let low = position;
    let high = last.seq - (last.record.position - position);
    let found: TranscriptEntry | null = null;
    while (low <= high) {
      const middle = Math.floor((low + high) / 2);
      const entry = await this.store.nextFrom(conversationId, middle);
      if (!entry) break;
      if (entry.record.position === position) return entry;
      if (entry.record.position > position) {
        found = entry;
        high = middle - 1;
      } else {
        low = entry.seq + 1;
      }
    }
    return found ?? this.store.nextFrom(conversationId, low);
  }
}

function jsonBytes(message: InjectedMessage): number {
  return Buffer.byteLength(JSON.stringify(message));
}
