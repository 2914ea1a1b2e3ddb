import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { RELEASE_STREAM, releaseMsgId, releaseSubject, type ReleaseMessage } from '@backchannel/contracts';
import { BrokerUnavailableError } from './errors.js';
import { decodeJson, encodeJson } from './json.js';

/** Publishes releases (stream BC_RELEASES) with a deterministic id per conversation and index. */
export class ReleaseLog {
  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm?: JetStreamManager,
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
    if (!this.jsm) throw new Error('ReleaseLog needs a JetStreamManager to read');
    const subject = releaseSubject(partition, conversationId);
    for (let seq = fromSeq; ;) {
      let found;
      try {
        found = await this.jsm.direct.getMessage(RELEASE_STREAM.name, { seq, next_by_subj: subject });
      } catch (error) {
        if (isNotFound(error)) return;
        throw new BrokerUnavailableError(error);
      }
      if (!found) return;
      yield decodeJson<ReleaseMessage>(found.data);
      seq = found.seq + 1;
    }
  }

  /** The highest `release_index` published for a conversation, 0 when none (one direct get of a literal subject). */
  async lastIndex(partition: number, conversationId: string): Promise<number> {
    if (!this.jsm) throw new Error('ReleaseLog needs a JetStreamManager to read');
    try {
      const last = await this.jsm.direct.getMessage(RELEASE_STREAM.name, {
        last_by_subj: releaseSubject(partition, conversationId),
      });
      return last ? decodeJson<ReleaseMessage>(last.data).release_index : 0;
    } catch (error) {
      if (isNotFound(error)) return 0;
      throw new BrokerUnavailableError(error);
    }
  }
}

function isNotFound(error: unknown): boolean {
  const code = (error as { code?: number }).code;
  return (
    code === 404 || code === 10037 || /no message found|message not found/i.test(String((error as Error)?.message))
  );
}
