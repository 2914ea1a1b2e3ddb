import { Injectable } from '@nestjs/common';
import { ApiError, RETRY_AFTER_UNAVAILABLE_S, type TranscriptRecord } from '@backchannel/contracts';
import { TranscriptStore, type TranscriptEntry } from './transcript.store.js';
import { TranscriptTails, tailOf, type TranscriptTail } from './transcript-tails.js';

/** How many compare-and-set rounds one append may lose before answering 503 (contention is brief). */
const MAX_APPEND_ATTEMPTS = 100;

/** What an append did: stored a new entry, found its own earlier copy, or was declined by `build`. */
export type AppendOutcome<D> =
  | { type: 'appended'; entry: TranscriptEntry; duplicate: boolean }
  | { type: 'declined'; decision: D; last: TranscriptTail };

/** Builds the next entry from the current tail, or declines with a reason. */
export type NextRecord<D> = (last: TranscriptTail) => { record: TranscriptRecord } | { decline: D };

/**
 * Appends to a conversation's transcript with gap-free positions: take the tail (cached
 * after this replica's own appends, else read), build the next entry (position + 1, the
 * applied release index carried forward), publish it expecting the tail's sequence; on
 * "wrong last sequence" another writer got there first, so read the tail and rebuild. A
 * retried publish with the same message id inside the broker's duplicate window returns
 * the original, which is read back.
 */
@Injectable()
export class TranscriptWriter {
  private readonly tails = new TranscriptTails();

  constructor(private readonly store: TranscriptStore) {}

  async append<D>(conversationId: string, msgId: string, next: NextRecord<D>): Promise<AppendOutcome<D>> {
    let last = this.tails.get(conversationId) ?? (await this.readTail(conversationId));
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
      const built = next(last);
      if ('decline' in built) {
        // A decision taken on a cached tail is confirmed on the stored one before it stands.
        if (last.entry === undefined) {
          last = await this.readTail(conversationId);
          continue;
        }
        return { type: 'declined', decision: built.decline, last };
      }
      const appended = await this.store.append(built.record, last.seq, msgId);
      if (!appended.ok) {
        last = await this.readTail(conversationId);
        continue;
      }
      if (!appended.duplicate) {
        const entry = { seq: appended.seq, record: built.record, msgId };
        this.tails.set(conversationId, tailOf(entry));
        return { type: 'appended', entry, duplicate: false };
      }
      this.tails.delete(conversationId);
      const original = await this.store.at(appended.seq);
      if (original) return { type: 'appended', entry: original, duplicate: true };
      last = await this.readTail(conversationId);
    }
    throw new ApiError('unavailable', 'too much contention on this transcript; retry', {
      headers: { 'retry-after': String(RETRY_AFTER_UNAVAILABLE_S) },
    });
  }

  private async readTail(conversationId: string): Promise<TranscriptTail> {
    const tail = tailOf(await this.store.last(conversationId));
    this.tails.set(conversationId, tail);
    return tail;
  }
}
