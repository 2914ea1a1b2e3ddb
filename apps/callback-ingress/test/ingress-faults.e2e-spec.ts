import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { ORDERING_SEQUENCER } from '../../ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { CALLBACK_INGRESS } from '../src/callback-ingress.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient, postCallback } from '../../../test/support/platform.js';
import { ReleaseWatcher } from '../../../test/support/releases.js';

describe('callback ingress under load limits and broker faults', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingress: TestService;
  let limited: TestService;
  let platform: PlatformClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    const ta = await startTestService(TOKEN_AUTHORITY, nats);
    ingress = await startTestService(CALLBACK_INGRESS, nats);
    limited = await startTestService(CALLBACK_INGRESS, nats, { INGRESS_RATE_LIMIT_PER_SOURCE: '3' });
    services = [ta, ingress, limited, await startTestService(ORDERING_SEQUENCER, nats)];
    platform = new PlatformClient(ta.service.url);
  });

  afterAll(async () => {
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  it('429 rate_limited with Retry-After past the per-source limit, changing nothing', async () => {
    await platform.openConversation('limits');
    const item = await platform.register('limits');
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        postCallback(limited.service.url, item.work_item_id, 'cbt_malformed', { result: 1 }),
      ),
    );
    const limitedAnswers = answers.filter((answer) => answer.status === 429);
    expect(limitedAnswers.length).toBeGreaterThanOrEqual(5);
    expect(limitedAnswers[0].body.errors[0].code).toBe('rate_limited');
    expect(Number(limitedAnswers[0].headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
  });

  it('503 with Retry-After while the broker is down; the retry after it returns is accepted and injected once', async () => {
    await platform.openConversation('broker-down');
    const item = await platform.register('broker-down');
    const watcher = await ReleaseWatcher.start(nats.url);
    await nats.stop();
    const refused = await eventually(async () => {
      const answer = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'kept' });
      expect(answer.status).toBe(503);
      return answer;
    });
    expect(refused.body.errors[0].code).toBe('unavailable');
    expect(refused.headers.get('retry-after')).toBe('1');
    await nats.restart();
    const accepted = await eventually(
      async () => {
        const answer = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'kept' });
        expect([200, 202]).toContain(answer.status);
        return answer;
      },
      { timeoutMs: 20_000 },
    );
    expect(accepted.body.work_item_id).toBe(item.work_item_id);
    await eventually(() => expect(watcher.of('broker-down')).toHaveLength(1), { timeoutMs: 20_000 });
    const replay = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'kept' });
    expect(replay.status).toBe(200);
    expect(watcher.of('broker-down')[0].result).toBe('kept');
    await watcher.close();
  });
});
