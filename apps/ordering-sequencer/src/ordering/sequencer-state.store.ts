import { KV_KEYS, kvSafeId } from '@backchannel/contracts';
import { JsonBucket, type Versioned } from '@backchannel/messaging';
import type { ConversationOrderState } from './release-order.js';

/** Per-conversation ordering state (bucket bc-sequencer-state), replaced by compare-and-set. */
export class SequencerStateStore {
  constructor(private readonly bucket: JsonBucket<ConversationOrderState>) {}

  get(partition: number, conversationId: string): Promise<Versioned<ConversationOrderState> | null> {
    return this.bucket.get(KV_KEYS.sequencerState(partition, kvSafeId(conversationId)));
  }

  /**
   * Writes the new state if nobody else moved it since `revision` (null: it did not exist).
   * Returns the new revision, or false when it lost the compare-and-set.
   */
  save(partition: number, state: ConversationOrderState, revision: number | null): Promise<number | false> {
    const key = KV_KEYS.sequencerState(partition, kvSafeId(state.conversationId));
    return revision === null ? this.bucket.create(key, state) : this.bucket.update(key, state, revision);
  }

  /** Every state of a partition: to rebuild deadline timers when taking it over. */
  async allOfPartition(partition: number): Promise<ConversationOrderState[]> {
    const keys = await this.bucket.keys(KV_KEYS.sequencerPartitionFilter(partition));
    const states = await Promise.all(keys.map((key) => this.bucket.get(key)));
    return states
      .filter((state): state is Versioned<ConversationOrderState> => state !== null)
      .map((state) => state.value);
  }
}
