import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';
import { mapConcurrent } from '../support/pool.js';
import { ReleaseWatcher } from '../support/releases.js';

/**
 * CONTRACT.md §2: a work item ends exactly once, whatever races. Two instances of each
 * service that enforces it, many concurrent callers, and a checker.
 */
describe('redemption and registration under concurrency', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingressUrls: string[];
  let platforms: PlatformClient[];
  let watcher: ReleaseWatcher;

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = { INGRESS_RATE_LIMIT_PER_SOURCE: '1000000' };
    const tas = [
      await startTestService(TOKEN_AUTHORITY, nats, env),
      await startTestService(TOKEN_AUTHORITY, nats, env),
    ];
    const ingresses = [
      await startTestService(CALLBACK_INGRESS, nats, env),
      await startTestService(CALLBACK_INGRESS, nats, env),
    ];
    const sequencer = await startTestService(ORDERING_SEQUENCER, nats, env);
    services = [...tas, ...ingresses, sequencer];
    ingressUrls = ingresses.map((ingress) => ingress.service.url);
    platforms = tas.map((ta) => new PlatformClient(ta.service.url));
    watcher = await ReleaseWatcher.start(nats.url);
  });

  afterAll(async () => {
    await watcher?.close();
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  it('1,000 tokens, each posted by 8 concurrent callers with different bodies: exactly one accepted each', async () => {
    const conversations = Array.from({ length: 20 }, (_, i) => `redeem-${i}`);
    for (const conversation of conversations) await platforms[0].openConversation(conversation);
    const items = await mapConcurrent(
      Array.from({ length: 1_000 }, (_, i) => i),
      16,
      (i) => platforms[i % 2].register(conversations[i % conversations.length], { ordered: false }),
    );
    const answers = await mapConcurrent(items, 8, (item) =>
      Promise.all(
        Array.from({ length: 8 }, (_, caller) =>
          postCallback(ingressUrls[caller % 2], item.work_item_id, item.token, { result: { caller } }),
        ),
      ),
    );
    const acceptedPerToken = answers.map((perToken) => perToken.filter((answer) => answer.status === 202).length);
    expect(acceptedPerToken.every((count) => count === 1)).toBe(true);
    const others = answers.flat().filter((answer) => answer.status !== 202);
    expect(new Set(others.map((answer) => answer.status))).toEqual(new Set([409]));
    // Every accepted result is released, once.
    await eventually(
      () => expect(watcher.releases.filter((r) => r.conversation_id.startsWith('redeem-'))).toHaveLength(1_000),
      {
        timeoutMs: 30_000,
      },
    );
    const released = watcher.releases.filter((r) => r.conversation_id.startsWith('redeem-'));
    expect(new Set(released.map((r) => r.source.work_item_id)).size).toBe(1_000);
  });

  it('100 concurrent registrations across two token authorities get sequences exactly 1..100', async () => {
    await platforms[0].openConversation('sequences');
    const registered = await Promise.all(Array.from({ length: 100 }, (_, i) => platforms[i % 2].register('sequences')));
    expect(registered.map((item) => item.sequence).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
  });

  it('callbacks at the deadline and concurrent cancels: one end per item, every 202 injected', async () => {
    await platforms[0].openConversation('races');
    const items = await Promise.all(
      Array.from({ length: 40 }, () => platforms[0].register('races', { timeout_ms: 1_000, ordered: false })),
    );
    const registeredAt = Date.now();
    const at = (offsetMs: number) =>
      new Promise((resolve) => setTimeout(resolve, Math.max(0, registeredAt + offsetMs - Date.now())));
    const outcomes = await Promise.all(
      items.map(async (item, i) => {
        const callback = at(900 + (i % 10) * 25).then(() =>
          postCallback(ingressUrls[i % 2], item.work_item_id, item.token, { result: i }),
        );
        const cancel = at(950 + (i % 7) * 20).then(() =>
          i % 3 === 0 ? platforms[1].cancel(item.work_item_id) : undefined,
        );
        const [callbackAnswer, cancelAnswer] = await Promise.all([callback, cancel]);
        return { item, callbackAnswer, cancelAnswer };
      }),
    );
    await eventually(
      async () => {
        for (const { item, callbackAnswer, cancelAnswer } of outcomes) {
          const state = (await platforms[0].workItem(item.work_item_id)).state;
          if (callbackAnswer.status === 202) expect(state).toBe('completed');
          if (cancelAnswer?.status === 200) expect(state).toBe('cancelled');
          expect(callbackAnswer.status === 202 && cancelAnswer?.status === 200).toBe(false);
          expect(['completed', 'cancelled', 'timed_out']).toContain(state);
        }
      },
      { timeoutMs: 10_000 },
    );
    const accepted = outcomes.filter((o) => o.callbackAnswer.status === 202).map((o) => o.item.work_item_id);
    await eventually(() => {
      const releasedCallbacks = watcher
        .of('races')
        .filter((r) => r.source.type === 'callback')
        .map((r) => r.source.work_item_id);
      expect(releasedCallbacks.sort()).toEqual([...accepted].sort());
    });
  });
});
