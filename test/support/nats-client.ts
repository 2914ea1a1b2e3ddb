import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';

/** The platform's NATS side: plain JSON request–reply on the `bc.v1.*` API. */
export class NatsApiClient {
  private constructor(readonly nc: NatsConnection) {}

  static async connect(url: string): Promise<NatsApiClient> {
    return new NatsApiClient(await connect({ servers: url, maxReconnectAttempts: -1 }));
  }

  async request(subject: string, body: unknown, timeoutMs = 5_000): Promise<any> {
    const reply = await this.nc.request(subject, JSON.stringify(body), { timeout: timeoutMs });
    return reply.json();
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
