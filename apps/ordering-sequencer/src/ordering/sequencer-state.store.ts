import { KV_KEYS, kvSafeId } from '@backchannel/contracts';
import type { JsonBucket, Versioned } from '@backchannel/messaging';
import type { ConversationOrderState } from './release-order.js';

/**
 * Snapshots of the per-conversation ordering states (bucket bc-sequencer-state). Written by
 * compare-and-set, and only ever replaced by a state that went further in the log, so a
 * paused replica cannot put an old one back (see `SequencerService.flush`).
 */
export class SequencerStateStore {
  constructor(private readonly bucket: JsonBucket<ConversationOrderState>) {}

  get(partition: number, conversationId: string): Promise<Versioned<ConversationOrderState> | null> {
    return this.bucket.get(KV_KEYS.sequencerState(partition, kvSafeId(conversationId)));
  }

  /** Writes if the snapshot is still at `revision` (null: absent); the new revision, or false if it moved. */
  save(partition: number, state: ConversationOrderState, revision: number | null): Promise<number | false> {
    const key = KV_KEYS.sequencerState(partition, kvSafeId(state.conversationId));
    return revision === null ? this.bucket.create(key, state) : this.bucket.update(key, state, revision);
  }

  /** A finished conversation's snapshot goes: nothing of it can change any more. */
  async remove(partition: number, conversationId: string): Promise<void> {
    await this.bucket.delete(KV_KEYS.sequencerState(partition, kvSafeId(conversationId)));
  }

  /** Every snapshot of a partition: the conversations to take over with it. */
  async allOfPartition(partition: number): Promise<Versioned<ConversationOrderState>[]> {
    const keys = await this.bucket.keys(KV_KEYS.sequencerPartitionFilter(partition));
    const states = await Promise.all(keys.map((key) => this.bucket.get(key)));
    return states.filter((state) => state !== null);
  }
}
