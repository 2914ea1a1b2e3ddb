import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { API_SUBJECTS } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../../apps/tool-dispatcher/src/tool-dispatcher.service-definition.js';
import { http, INTERNAL_TOKEN, startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { NatsApiClient } from '../support/nats-client.js';
import { PlatformClient, postCallback } from '../support/platform.js';

/** What a provider receives: the tool invocations (and cancel notices) the dispatcher sends. */
class FakeProvider {
  readonly received: { path: string; body: any; headers: Record<string, unknown> }[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeProvider> {
    const holder: { provider?: FakeProvider } = {};
    const server = createServer((request, response) => {
      let raw = '';
      request.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
      request.on('end', () => {
        const body = raw ? JSON.parse(raw) : undefined;
        holder.provider!.received.push({ path: request.url ?? '/', body, headers: request.headers });
        if (request.url === '/sync') {
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ result: { echoed: true } }));
        } else if (request.url === '/broken') {
          response.writeHead(500).end();
        } else {
          response.writeHead(202).end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const provider = new FakeProvider(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    holder.provider = provider;
    return provider;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const SECRET_SHAPES = [/cbt_[A-Za-z0-9_-]{43}/, /bck_[A-Za-z0-9_-]{43}/, /whsec_[A-Za-z0-9+/=]{16,}/];

/**
 * CONTRACT.md §5 and §7: no log line ever holds a callback token, an API key, the internal
 * token, a presented (wrong) bearer token or a tool's signing secret, even at
 * LOG_LEVEL=debug, whatever path a request takes: success, refusal, replay, conflict,
 * NATS API, tenant API, SSE, outbound tool requests and cancel notices.
 */
describe('no secret in any log line at debug level', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ta: TestService;
  let ingress: TestService;
  let injector: TestService;
  let dispatcher: TestService;
  let provider: FakeProvider;
  let natsApi: NatsApiClient;
  const secrets = new Set<string>([INTERNAL_TOKEN]);

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = { LOG_LEVEL: 'debug' };
    ta = await startTestService(TOKEN_AUTHORITY, nats, env);
    ingress = await startTestService(CALLBACK_INGRESS, nats, env);
    const sequencer = await startTestService(ORDERING_SEQUENCER, nats, env);
    injector = await startTestService(CONVERSATION_INJECTOR, nats, env);
    dispatcher = await startTestService(TOOL_DISPATCHER, nats, env);
    services = [ta, ingress, sequencer, injector, dispatcher];
    provider = await FakeProvider.start();
    natsApi = await NatsApiClient.connect(nats.url);
  });

  afterAll(async () => {
    await natsApi?.close();
    await provider?.close();
    for (const service of [...services].reverse()) await service.service.stop();
    await nats?.cleanup();
  });

  it('exercises every service with secrets, then finds none of them in the logs', async () => {
    const platform = new PlatformClient(ta.service.url);
    await platform.openConversation('leaky', 'tenant-a');

    // Callback tokens: accepted, replayed, conflicting, progress, wrong token, malformed.
    const items = [];
    for (let i = 0; i < 3; i++) items.push(await platform.register('leaky', { ordered: false }));
    for (const item of items) secrets.add(item.token);
    await postCallback(ingress.service.url, items[0].work_item_id, items[0].token, { result: { n: 1 } });
    await postCallback(ingress.service.url, items[0].work_item_id, items[0].token, { result: { n: 1 } });
    await postCallback(ingress.service.url, items[0].work_item_id, items[0].token, { result: { n: 2 } });
    await http('POST', `${ingress.service.url}/api/v1/webhooks/${items[1].work_item_id}/progress`, {
      headers: { 'x-callback-token': items[1].token },
      body: { progress: { message: 'half way', percent: 50 } },
    });
    const forged = `cbt_${'A'.repeat(43)}`;
    secrets.add(forged);
    await postCallback(ingress.service.url, items[1].work_item_id, forged, { result: 1 });
    await postCallback(ingress.service.url, items[1].work_item_id, `${items[1].token}x`, { result: 1 });
    await http('POST', `${ingress.service.url}/api/v1/webhooks/${items[1].work_item_id}`, {
      headers: { 'x-callback-token': items[1].token, 'content-type': 'application/json' },
      rawBody: '{not json',
    });
    await http('POST', `${ingress.service.url}/api/v1/webhooks/${items[1].work_item_id}`, {
      headers: { 'x-callback-token': items[1].token, authorization: `Bearer ${items[2].token}` },
      rawBody: 'plain text',
    });

    // The internal API: right and wrong bearer tokens, over HTTP and NATS.
    const wrongBearer = 'wrong-internal-token-0123456789';
    secrets.add(wrongBearer);
    await http('GET', `${ta.service.url}/internal/v1/work-items/${items[2].work_item_id}`, {
      headers: { authorization: `Bearer ${wrongBearer}` },
    });
    await http('GET', `${ta.service.url}/internal/v1/work-items/${items[2].work_item_id}`, { internal: true });
    const overNats = await natsApi.request(API_SUBJECTS.workItemsRegister, {
      conversation_id: 'leaky',
      kind: 'llm',
    });
    secrets.add(overNats.callback.headers['x-callback-token']);
    await postCallback(ingress.service.url, overNats.work_item_id, overNats.callback.headers['x-callback-token'], {
      message: { content: 'from the model' },
    });

    // API keys: created over HTTP and NATS, used on the tenant API (and SSE), revoked, reused.
    const key = (
      await http('POST', `${ta.service.url}/internal/v1/api-keys`, { internal: true, body: { tenant_id: 'tenant-a' } })
    ).body;
    const natsKey = await natsApi.request(API_SUBJECTS.apiKeysCreate, { tenant_id: 'tenant-a' });
    secrets.add(key.api_key);
    secrets.add(natsKey.api_key);
    const tenant = { authorization: `Bearer ${key.api_key}` };
    await http('POST', `${injector.service.url}/api/v1/conversations/leaky/messages`, {
      headers: { ...tenant, 'idempotency-key': 'once' },
      body: { messages: [{ role: 'system', content: 'hello' }] },
    });
    await http('GET', `${injector.service.url}/api/v1/conversations/leaky/messages`, { headers: tenant });
    await http('GET', `${injector.service.url}/api/v1/conversations/nobody/messages`, { headers: tenant });
    const sse = new AbortController();
    const stream = await fetch(`${injector.service.url}/api/v1/conversations/leaky/events?after=0`, {
      headers: { authorization: `Bearer ${natsKey.api_key}` },
      signal: sse.signal,
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let seen = '';
    while (!seen.includes(': ready')) seen += new TextDecoder().decode((await reader.read()).value);
    sse.abort();
    await http('POST', `${ta.service.url}/internal/v1/api-keys/${key.key_id}/revoke`, { internal: true });
    await http('GET', `${injector.service.url}/api/v1/conversations/leaky/messages`, { headers: tenant });
    await http('GET', `${injector.service.url}/api/v1/conversations/leaky/messages`, {
      headers: { authorization: `Bearer bck_${'B'.repeat(43)}` },
    });
    secrets.add(`bck_${'B'.repeat(43)}`);

    // Tool invocations with a signing secret: async (then cancelled: a signed cancel
    // notice), sync, and an unreachable tool (retries, failure injected).
    const signingSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    secrets.add(signingSecret);
    const invoke = (path: string, mode: 'async' | 'sync') =>
      http('POST', `${dispatcher.service.url}/internal/v1/tool-invocations`, {
        internal: true,
        body: {
          conversation_id: 'leaky',
          call_control_id: 'call-1',
          tool: {
            url: `${provider.url}${path}`,
            mode,
            timeout_ms: 5_000,
            ack_timeout_ms: 1_000,
            signing_secret: signingSecret,
          },
          arguments: { q: 'x' },
        },
      });
    const asyncAnswer = await invoke('/async', 'async');
    expect(asyncAnswer.status).toBe(202);
    expect((await invoke('/sync', 'sync')).status).toBe(200);
    expect((await invoke('/broken', 'async')).status).toBe(502);
    const invocation = provider.received.find((request) => request.path === '/async')!;
    secrets.add(invocation.body.callback.headers['x-callback-token']);
    await platform.cancel(asyncAnswer.body.work_item_id);
    await eventually(
      () => expect(provider.received.filter((r) => r.body?.type === 'work_item.cancelled')).toHaveLength(1),
      {
        timeoutMs: 10_000,
      },
    );

    await platform.endConversation('leaky');
    for (const service of services) await http('GET', `${service.service.url}/metrics`);
    await eventually(() => expect(injector.logs.lines.length).toBeGreaterThan(0));

    // The scan: every line of every service, against every secret and every secret shape.
    const leaks: string[] = [];
    for (const service of services) {
      for (const line of service.logs.lines) {
        for (const secret of secrets) if (line.includes(secret)) leaks.push(`${service.service.context.name}: ${line}`);
        for (const shape of SECRET_SHAPES) if (shape.test(line)) leaks.push(`${service.service.context.name}: ${line}`);
      }
    }
    expect(leaks).toEqual([]);
    // The scan looked at something: debug lines of every service, request lines included.
    for (const service of services) {
      const levels = new Set(service.logs.lines.map((line) => JSON.parse(line).level));
      expect(levels).toContain('debug');
    }
    expect(ingress.logs.lines.filter((line) => line.includes('"msg":"http request"')).length).toBeGreaterThan(5);
  });
});
