import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { RELEASE_SUBJECT_PREFIX, type ReleaseMessage } from '@backchannel/contracts';

/** Watches every release the sequencer publishes (core subscription on the release subjects). */
export class ReleaseWatcher {
  readonly releases: ReleaseMessage[] = [];
  private constructor(private readonly nc: NatsConnection) {}

  static async start(url: string): Promise<ReleaseWatcher> {
    const nc = await connect({ servers: url, maxReconnectAttempts: -1 });
    const watcher = new ReleaseWatcher(nc);
    nc.subscribe(`${RELEASE_SUBJECT_PREFIX}.>`, {
      callback: (_error, msg) => {
        watcher.releases.push(msg.json<ReleaseMessage>());
      },
    });
    await nc.flush();
    return watcher;
  }

  of(conversationId: string): ReleaseMessage[] {
    return this.releases.filter((release) => release.conversation_id === conversationId);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
