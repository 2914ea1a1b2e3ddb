import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../callback-ingress/src/callback-ingress.service-definition.js';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { ORDERING_SEQUENCER } from '../src/ordering-sequencer.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient, postCallback } from '../../../test/support/platform.js';
import { ReleaseWatcher } from '../../../test/support/releases.js';

describe('ordering sequencer: releases in conversation order', () => {
  let nats: NatsServerHandle;
  let services: TestService[];
  let ingressUrl: string;
  let platform: PlatformClient;
  let watcher: ReleaseWatcher;

  beforeAll(async () => {
    nats = await startNatsServer();
    const [ta, ingress, sequencer] = [
      await startTestService(TOKEN_AUTHORITY, nats),
      await startTestService(CALLBACK_INGRESS, nats),
      await startTestService(ORDERING_SEQUENCER, nats),
    ];
    services = [ta, ingress, sequencer];
    ingressUrl = ingress.service.url;
    platform = new PlatformClient(ta.service.url);
    watcher = await ReleaseWatcher.start(nats.url);
  });

  afterAll(async () => {
    await watcher?.close();
    for (const service of services ?? []) await service.service.stop();
    await nats?.cleanup();
  });

  it('results posted 3, 1, 2 are released 1, 2, 3', async () => {
    await platform.openConversation('order-1');
    const items = [
      await platform.register('order-1'),
      await platform.register('order-1'),
      await platform.register('order-1'),
    ];
    for (const index of [2, 0, 1]) {
      const item = items[index];
      expect((await postCallback(ingressUrl, item.work_item_id, item.token, { result: { n: index + 1 } })).status).toBe(
        202,
      );
    }
    const released = await eventually(() => {
      const releases = watcher.of('order-1');
      expect(releases).toHaveLength(3);
      return releases;
    });
    expect(released.map((r) => r.source.sequence)).toEqual([1, 2, 3]);
    expect(released.map((r) => r.release_index)).toEqual([1, 2, 3]);
    expect(released.map((r) => r.result)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it('a silent item times out at its place and later results follow; a cancelled one is skipped', async () => {
    await platform.openConversation('order-2');
    const silent = await platform.register('order-2', { timeout_ms: 1_000 });
    const cancelled = await platform.register('order-2');
    const answered = await platform.register('order-2');
    expect(
      (await postCallback(ingressUrl, answered.work_item_id, answered.token, { result: 'late but fine' })).status,
    ).toBe(202);
    expect((await platform.cancel(cancelled.work_item_id)).status).toBe(200);
    const released = await eventually(
      () => {
        const releases = watcher.of('order-2');
        expect(releases).toHaveLength(2);
        return releases;
      },
      { timeoutMs: 10_000 },
    );
    expect(released[0]).toMatchObject({ source: { type: 'timeout', work_item_id: silent.work_item_id, sequence: 1 } });
    expect(released[0].errors![0].code).toBe('work_item_timed_out');
    expect(released[1]).toMatchObject({ source: { type: 'callback', sequence: 3 }, result: 'late but fine' });
  });

  it('ending a conversation releases the held results in order', async () => {
    await platform.openConversation('order-3');
    const first = await platform.register('order-3');
    const second = await platform.register('order-3');
    const third = await platform.register('order-3');
    await postCallback(ingressUrl, third.work_item_id, third.token, { result: 3 });
    await postCallback(ingressUrl, second.work_item_id, second.token, { result: 2 });
    const ended = await platform.endConversation('order-3');
    expect(ended.cancelled_work_items).toBe(1);
    const released = await eventually(() => {
      const releases = watcher.of('order-3');
      expect(releases).toHaveLength(2);
      return releases;
    });
    expect(released.map((r) => r.result)).toEqual([2, 3]);
    expect(first.sequence).toBe(1);
  });
});
