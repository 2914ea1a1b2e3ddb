import { KV_KEYS, kvSafeId } from '@backchannel/contracts';
import type { JsonBucket } from '@backchannel/messaging';
import type { ConversationOrderState } from './release-order.js';

/**
 * Snapshots of the per-conversation ordering states (bucket bc-sequencer-state). A snapshot
 * only shortens a catch-up: the state is a fold of the work log, so one that is missing
 * or behind (a paused replica wrote last) is completed from the log.
 */
export class SequencerStateStore {
  constructor(private readonly bucket: JsonBucket<ConversationOrderState>) {}

  async get(partition: number, conversationId: string): Promise<ConversationOrderState | null> {
    return (await this.bucket.get(KV_KEYS.sequencerState(partition, kvSafeId(conversationId))))?.value ?? null;
  }

  async put(partition: number, state: ConversationOrderState): Promise<void> {
    await this.bucket.put(KV_KEYS.sequencerState(partition, kvSafeId(state.conversationId)), state);
  }

  /** A finished conversation's snapshot goes: nothing of it can change any more. */
  async remove(partition: number, conversationId: string): Promise<void> {
    await this.bucket.delete(KV_KEYS.sequencerState(partition, kvSafeId(conversationId)));
  }

  /** Every snapshot of a partition: the conversations to catch up when taking it over. */
  async allOfPartition(partition: number): Promise<ConversationOrderState[]> {
    const keys = await this.bucket.keys(KV_KEYS.sequencerPartitionFilter(partition));
    const states = await Promise.all(keys.map((key) => this.bucket.get(key)));
    return states.filter((state) => state !== null).map((state) => state.value);
  }
}
