import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { RELEASE_STREAM, type ReleaseMessage } from '@backchannel/contracts';

/**
 * Reads every release the sequencer stored, from the stream itself (an ordered consumer
 * from the start), so broker restarts lose nothing and a duplicate in the stream shows.
 */
export class ReleaseWatcher {
  readonly releases: ReleaseMessage[] = [];
  private constructor(private readonly nc: NatsConnection) {}

  static async start(url: string): Promise<ReleaseWatcher> {
    const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const watcher = new ReleaseWatcher(nc);
    const consumer = await jetstream(nc).consumers.get(RELEASE_STREAM.name);
    const messages = await consumer.consume();
    void (async () => {
      for await (const message of messages) watcher.releases.push(message.json<ReleaseMessage>());
    })().catch(() => undefined);
    return watcher;
  }

  of(conversationId: string): ReleaseMessage[] {
    return this.releases.filter((release) => release.conversation_id === conversationId);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
