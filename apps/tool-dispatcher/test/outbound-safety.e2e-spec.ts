import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsServerHandle } from '@backchannel/testing';
import type { ServiceDefinition } from '@backchannel/http';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { HostNotFoundError, HostResolver, type ResolvedAddress } from '../src/outbound/host-resolver.js';
import { ToolDispatcherModule } from '../src/tool-dispatcher.module.js';
import { TOOL_DISPATCHER } from '../src/tool-dispatcher.service-definition.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient } from '../../../test/support/platform.js';
import { FakeTool } from './fake-tool.js';

/** Answers from a table, never from DNS; a function entry may answer differently each time. */
class StubResolver extends HostResolver {
  readonly asked: string[] = [];
  constructor(private readonly table: Record<string, string[] | (() => string[])>) {
    super();
  }

  resolve(hostname: string): Promise<ResolvedAddress[]> {
    this.asked.push(hostname);
    const entry = this.table[hostname];
    if (!entry) return Promise.reject(new HostNotFoundError(hostname));
    const addresses = typeof entry === 'function' ? entry() : entry;
    return Promise.resolve(addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  }
}

// A documentation-range stand-in would be refused as reserved; this one is ordinary public unicast.
const PUBLIC = '93.184.216.34';

describe('tool dispatcher: outbound safety (private networks not allowed)', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let dispatcher: TestService;
  let platform: PlatformClient;
  let tool: FakeTool;
  let resolver: StubResolver;
  let rebindCalls = 0;
  let n = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    tool = await FakeTool.start();
    resolver = new StubResolver({
      'private.tools.test': ['10.1.2.3'],
      'loopback.tools.test': ['127.0.0.1'],
      'linklocal.tools.test': ['169.254.10.10'],
      'metadata.tools.test': ['169.254.169.254'],
      'v6-metadata.tools.test': ['fd00:ec2::254'],
      'v6-loopback.tools.test': ['::1'],
      'mixed.tools.test': [PUBLIC, '192.168.1.1'],
      localhost: ['127.0.0.1', '::1'],
      // Public when checked, loopback when connected to: the connection itself must be checked.
      'rebind.tools.test': () => (++rebindCalls % 2 === 1 ? [PUBLIC] : ['127.0.0.1']),
    });
    const guarded: ServiceDefinition = {
      ...TOOL_DISPATCHER,
      module: (context) => ToolDispatcherModule.register(context, { resolver }),
    };
    ta = await startTestService(TOKEN_AUTHORITY, nats);
    dispatcher = await startTestService(guarded, nats, { DISPATCHER_ALLOW_PRIVATE_NETWORKS: 'false' });
    platform = new PlatformClient(ta.service.url);
  });

  afterAll(async () => {
    await dispatcher?.service.stop();
    await ta?.service.stop();
    await tool?.close();
    await nats?.cleanup();
  });

  async function conversation(): Promise<string> {
    const id = `safety-${++n}`;
    await platform.openConversation(id);
    return id;
  }

  function invoke(conversationId: string, url: string, mode: 'async' | 'sync' = 'async') {
    return http('POST', `${dispatcher.service.url}/internal/v1/tool-invocations`, {
      internal: true,
      body: { conversation_id: conversationId, call_control_id: 'call-1', tool: { url, mode }, arguments: {} },
    });
  }

  it('refuses private, loopback, link-local and metadata addresses with 400 /tool/url, registering nothing', async () => {
    const conversationId = await conversation();
    const port = new URL(tool.baseUrl).port;
    const refused = [
      'http://private.tools.test/tool',
      'https://loopback.tools.test/tool',
      'http://linklocal.tools.test/tool',
      'http://metadata.tools.test/latest/meta-data/',
      'http://v6-metadata.tools.test/latest/meta-data/',
      'http://v6-loopback.tools.test/tool',
      'http://mixed.tools.test/tool',
      `http://localhost:${port}/tool`,
      `http://127.0.0.1:${port}/tool`,
      `http://[::1]:${port}/tool`,
      `http://[::ffff:127.0.0.1]:${port}/tool`,
      `http://0.0.0.0:${port}/tool`,
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      'http://100.100.100.200/latest/meta-data/',
      'http://10.0.0.1/tool',
      'http://192.168.0.10/tool',
      'http://224.0.0.1/tool',
    ];
    for (const url of refused) {
      for (const mode of ['async', 'sync'] as const) {
        const answer = await invoke(conversationId, url, mode);
        expect({ url, mode, status: answer.status }).toEqual({ url, mode, status: 400 });
        expect(answer.body.errors[0]).toMatchObject({ code: 'invalid_request', source: { pointer: '/tool/url' } });
      }
    }
    expect(tool.connections).toBe(0);
    expect(resolver.asked).toContain('metadata.tools.test');
    expect((await platform.register(conversationId)).sequence).toBe(1);
  });

  it('refuses non-http schemes and URLs carrying credentials', async () => {
    const conversationId = await conversation();
    const refused = [
      'file:///etc/passwd',
      'ftp://private.tools.test/tool',
      'gopher://private.tools.test:70/_',
      'ws://private.tools.test/tool',
      'data:application/json,{}',
      'not a url',
      'http://user:secret@private.tools.test/tool',
    ];
    for (const url of refused) {
      const answer = await invoke(conversationId, url);
      expect({ url, status: answer.status }).toEqual({ url, status: 400 });
      expect(answer.body.errors[0].source.pointer).toBe('/tool/url');
      expect(JSON.stringify(answer.body)).not.toContain('secret@');
    }
    expect((await platform.register(conversationId)).sequence).toBe(1);
  });

  it('refuses a host that does not resolve', async () => {
    const conversationId = await conversation();
    const answer = await invoke(conversationId, 'http://nowhere.tools.test/tool');
    expect(answer.status).toBe(400);
    expect(answer.body.errors[0]).toMatchObject({ code: 'invalid_request', source: { pointer: '/tool/url' } });
  });

  it('checks the address actually connected to: a name re-resolving to loopback is refused before any connection', async () => {
    const port = new URL(tool.baseUrl).port;
    const url = `http://rebind.tools.test:${port}/tool`;
    const conversationId = await conversation();

    const sync = await invoke(conversationId, url, 'sync');
    expect(sync.status).toBe(400);
    expect(sync.body.errors[0]).toMatchObject({ code: 'invalid_request', source: { pointer: '/tool/url' } });

    // Async registers (the pre-check passed), then the connection is refused: a refused
    // address is not retried, and the item fails by dispatch.
    const callsBefore = rebindCalls;
    const async = await invoke(conversationId, url, 'async');
    expect(async.status).toBe(502);
    expect(async.body.errors[0].code).toBe('tool_unreachable');
    expect(rebindCalls - callsBefore).toBe(2);
    expect((await platform.workItem(async.body.errors[0].meta.work_item_id)).state).toBe('failed');
    expect(tool.connections).toBe(0);
  });
});
