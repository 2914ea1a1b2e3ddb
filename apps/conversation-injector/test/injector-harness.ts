import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import {
  liveMessagesSubject,
  partitionOf,
  releaseMsgId,
  releaseSubject,
  type InjectedMessage,
  type ReleaseMessage,
} from '@backchannel/contracts';
import type { ServiceDefinition } from '@backchannel/http';
import type { NatsServerHandle } from '@backchannel/testing';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { CONVERSATION_INJECTOR } from '../src/conversation-injector.service-definition.js';
import { ConversationInjectorModule } from '../src/conversation-injector.module.js';
import type { InjectorOptions } from '../src/injector.options.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient } from '../../../test/support/platform.js';

/** testEnv's partition count (test/support/mesh.ts). */
export const PARTITIONS = 4;

/** The injector with test knobs (a short keep-alive, say), as its own service definition. */
export function injectorDefinition(options: InjectorOptions = {}): ServiceDefinition {
  return { ...CONVERSATION_INJECTOR, module: (context) => ConversationInjectorModule.register(context, options) };
}

/**
 * A private broker, the real token authority (conversations and API keys) and the
 * injector. Releases are published the way the sequencer does (that stream is the
 * injector's contract), so no sequencer is needed.
 */
export class InjectorHarness {
  platform!: PlatformClient;
  nc!: NatsConnection;
  js!: JetStreamClient;
  private counter = 0;

  private constructor(
    readonly nats: NatsServerHandle,
    readonly tokenAuthority: TestService,
    public injector: TestService,
  ) {}

  /** `env` is the injector's extra environment (a low `INJECTOR_RATE_LIMIT_PER_KEY`, say). */
  static async start(options: InjectorOptions = {}, env: Record<string, string> = {}): Promise<InjectorHarness> {
    const nats = await startNatsServer();
    const tokenAuthority = await startTestService(TOKEN_AUTHORITY, nats);
    const injector = await startTestService(injectorDefinition(options), nats, env);
    const harness = new InjectorHarness(nats, tokenAuthority, injector);
    harness.platform = new PlatformClient(tokenAuthority.service.url);
    harness.nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    // Short: a publish caught by a broker restart fails fast and is retried.
    harness.js = jetstream(harness.nc, { timeout: 1_000 });
    return harness;
  }

  async stop(): Promise<void> {
    await this.nc?.close().catch(() => undefined);
    await this.injector?.service.stop();
    await this.tokenAuthority?.service.stop();
    await this.nats?.cleanup();
  }

  get url(): string {
    return this.injector.service.url;
  }

  /** A fresh id, unique in this test file; with a `:`, which ids may hold and KV keys may not. */
  id(prefix = 'conv'): string {
    return `${prefix}:${++this.counter}`;
  }

  async apiKey(tenantId: string): Promise<{ api_key: string; key_id: string }> {
    const created = await http('POST', `${this.tokenAuthority.service.url}/internal/v1/api-keys`, {
      internal: true,
      body: { tenant_id: tenantId },
    });
    if (created.status !== 201) throw new Error(`api key: ${JSON.stringify(created.body)}`);
    return created.body as { api_key: string; key_id: string };
  }

  async revoke(keyId: string): Promise<void> {
    const revoked = await http('POST', `${this.tokenAuthority.service.url}/internal/v1/api-keys/${keyId}/revoke`, {
      internal: true,
    });
    if (revoked.status !== 200) throw new Error(`revoke: ${JSON.stringify(revoked.body)}`);
  }

  /** Publishes a release as the sequencer does (its subject, its message id). */
  async release(
    conversationId: string,
    releaseIndex: number,
    overrides: Partial<ReleaseMessage> = {},
    msgId?: string,
  ): Promise<void> {
    await this.js.publish(
      releaseSubject(partitionOf(conversationId, PARTITIONS), conversationId),
      JSON.stringify(release(conversationId, releaseIndex, overrides)),
      { msgID: msgId ?? releaseMsgId(conversationId, releaseIndex) },
    );
  }

  /** Collects what the live subject carries for one conversation. */
  async live(conversationId: string): Promise<{ messages: InjectedMessage[]; stop(): void }> {
    const messages: InjectedMessage[] = [];
    const subscription = this.nc.subscribe(liveMessagesSubject(conversationId), {
      callback: (_error, msg) => {
        messages.push(msg.json<InjectedMessage>());
      },
    });
    await this.nc.flush();
    return { messages, stop: () => subscription.unsubscribe() };
  }

  /** The tenant API over real HTTP. */
  api(
    method: string,
    path: string,
    options: { key?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): ReturnType<typeof http> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    return http(method, `${this.url}${path}`, {
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
    });
  }

  /** The whole transcript, through the tenant API's pages. */
  async transcript(conversationId: string, key: string, limit = 1_000): Promise<InjectedMessage[]> {
    const all: InjectedMessage[] = [];
    for (let after = 0; ;) {
      const page = await this.api(
        'GET',
        `/api/v1/conversations/${conversationId}/messages?after=${after}&limit=${limit}`,
        { key },
      );
      if (page.status !== 200) throw new Error(`list: ${page.status} ${JSON.stringify(page.body)}`);
      const body = page.body as { messages: InjectedMessage[]; next_after: number | null };
      if (body.messages.length === 0) return all;
      all.push(...body.messages);
      after = body.next_after ?? after;
    }
  }
}

/** A tool result release, as the sequencer builds one. */
export function release(
  conversationId: string,
  releaseIndex: number,
  overrides: Partial<ReleaseMessage> = {},
): ReleaseMessage {
  return {
    conversation_id: conversationId,
    release_index: releaseIndex,
    role: 'tool',
    source: { type: 'callback', work_item_id: `wi_${String(releaseIndex).padStart(26, '0')}`, sequence: releaseIndex },
    result: { n: releaseIndex },
    delivery: 'when_idle',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    accepted_at: new Date().toISOString(),
    ...overrides,
  };
}
