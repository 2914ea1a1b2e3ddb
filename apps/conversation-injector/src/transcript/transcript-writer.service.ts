import { Injectable } from '@nestjs/common';
import { ApiError, RETRY_AFTER_UNAVAILABLE_S, type TranscriptRecord } from '@backchannel/contracts';
import { TranscriptStore, type TranscriptEntry } from './transcript.store.js';

/** How many compare-and-set rounds one append may lose before answering 503 (contention is brief). */
const MAX_APPEND_ATTEMPTS = 100;

/** What an append did: stored a new entry, found its own earlier copy, or was declined by `build`. */
export type AppendOutcome<D> =
  | { type: 'appended'; entry: TranscriptEntry; duplicate: boolean }
  | { type: 'declined'; decision: D; last: TranscriptEntry | null };

/** Builds the next entry from the current last one, or declines with a reason. */
export type NextRecord<D> = (last: TranscriptRecord | null) => { record: TranscriptRecord } | { decline: D };

/**
 * Appends to a conversation's transcript with gap-free positions: read the last entry,
 * build the next (position + 1, the applied release index carried forward), publish it
 * expecting the last entry's sequence; on "wrong last sequence" another writer got there
 * first, so read again and rebuild. A retried publish with the same message id inside
 * the broker's duplicate window returns the original, which is read back.
 */
@Injectable()
export class TranscriptWriter {
  constructor(private readonly store: TranscriptStore) {}

  async append<D>(conversationId: string, msgId: string, next: NextRecord<D>): Promise<AppendOutcome<D>> {
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
      const last = await this.store.last(conversationId);
      const built = next(last?.record ?? null);
      if ('decline' in built) return { type: 'declined', decision: built.decline, last };
      const appended = await this.store.append(built.record, last?.seq ?? 0, msgId);
      if (!appended.ok) continue;
      if (!appended.duplicate)
        return { type: 'appended', entry: { seq: appended.seq, record: built.record, msgId }, duplicate: false };
      const original = await this.store.at(appended.seq);
      if (original) return { type: 'appended', entry: original, duplicate: true };
    }
    throw new ApiError('unavailable', 'too much contention on this transcript; retry', {
      headers: { 'retry-after': String(RETRY_AFTER_UNAVAILABLE_S) },
    });
  }
}
