import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { dumpAllStreams } from '../support/broker-dump.js';
import { http, INTERNAL_TOKEN, startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';

/** CONTRACT.md §1: tokens and API keys are stored only as hashes. Read everything back. */
describe('secrets at rest', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  const secrets: string[] = [INTERNAL_TOKEN];

  beforeAll(async () => {
    nats = await startNatsServer();
    services = [
      await startTestService(TOKEN_AUTHORITY, nats),
      await startTestService(CALLBACK_INGRESS, nats),
      await startTestService(ORDERING_SEQUENCER, nats),
    ];
  });

  afterAll(async () => {
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  it('no stream or KV bucket holds a raw callback token, API key or the internal token', async () => {
    const [ta, ingress] = services as [TestService, TestService];
    const platform = new PlatformClient(ta.service.url);
    await platform.openConversation('secrets');
    for (let i = 0; i < 5; i++) {
      const item = await platform.register('secrets', i % 2 ? { idempotency_key: `k${i}` } : {});
      secrets.push(item.token);
      await postCallback(ingress.service.url, item.work_item_id, item.token, {
        result: { echo: item.token.slice(0, 10) },
      });
    }
    const key = await http('POST', `${ta.service.url}/internal/v1/api-keys`, {
      internal: true,
      body: { tenant_id: 'tenant-a' },
    });
    secrets.push(key.body.api_key);
    await platform.endConversation('secrets');

    const dump = await dumpAllStreams(nats.url);
    expect(dump.length).toBeGreaterThan(10);
    for (const entry of dump) {
      for (const secret of secrets) expect(entry.text).not.toContain(secret);
      expect(entry.text).not.toMatch(/(cbt|bck)_[A-Za-z0-9_-]{43}/);
    }
    for (const service of services) {
      for (const line of service.logs.lines) {
        for (const secret of secrets) expect(line).not.toContain(secret);
      }
    }
  });
});
