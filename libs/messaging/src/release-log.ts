import type { JetStreamClient } from '@nats-io/jetstream';
import { RELEASE_STREAM, releaseMsgId, releaseSubject, type ReleaseMessage } from '@backchannel/contracts';
import { BrokerUnavailableError } from './errors.js';
import { encodeJson } from './json.js';

/** Publishes releases (stream BC_RELEASES) with a deterministic id per conversation and index. */
export class ReleaseLog {
  constructor(private readonly js: JetStreamClient) {}

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
}
