import type { JetStreamClient } from '@nats-io/jetstream';
import { RELEASE_STREAM, releaseMsgId, releaseSubject, type ReleaseMessage } from '@backchannel/contracts';
import { BrokerUnavailableError } from './errors.js';
import { decodeJson, encodeJson } from './json.js';
import type { StreamReads } from './stream-reads.js';

/** Publishes releases (stream BC_RELEASES) with a deterministic id per conversation and index. */
export class ReleaseLog {
  constructor(
    private readonly js: JetStreamClient,
    private readonly reads: StreamReads,
  ) {}

  async publish(partition: number, release: ReleaseMessage): Promise<void> {
    try {
      await this.js.publish(releaseSubject(partition, release.conversation_id), encodeJson(release), {
        msgID: releaseMsgId(release.conversation_id, release.release_index),
        expect: { streamName: RELEASE_STREAM.name },
      });
    } catch (error) {
      throw new BrokerUnavailableError(error);
    }
  }

  /**
   * The releases of a conversation in stream order (which is `release_index` order),
   * starting at stream sequence `fromSeq`: to fill a gap a skipped delivery left.
   */
  async *releasesOf(partition: number, conversationId: string, fromSeq = 1): AsyncGenerator<ReleaseMessage> {
    const subject = releaseSubject(partition, conversationId);
    for (let seq = fromSeq; ;) {
      const found = await this.reads.get(RELEASE_STREAM.name, { seq, next_by_subj: subject });
      if (!found) return;
      yield decodeJson<ReleaseMessage>(found.data);
      seq = found.seq + 1;
    }
  }

  /** The highest `release_index` published for a conversation, 0 when none (one read of a literal subject). */
  async lastIndex(partition: number, conversationId: string): Promise<number> {
    const last = await this.reads.get(RELEASE_STREAM.name, { last_by_subj: releaseSubject(partition, conversationId) });
    return last ? decodeJson<ReleaseMessage>(last.data).release_index : 0;
  }
}
