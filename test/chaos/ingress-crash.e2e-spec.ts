import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { CrashPointName } from '@backchannel/config';
import { eventually, freePort, type NatsServerHandle } from '@backchannel/testing';
import { startNatsServer, testEnv } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';
import { ProcessMesh, ServiceProcess } from '../support/process-mesh.js';
import { ReleaseWatcher } from '../support/releases.js';

/**
 * CONTRACT.md §3: "A provider that retries after a timeout, a 5xx or a dropped connection,
 * with the same token and body, never causes a second injection and never loses the first."
 * The ingress (a real process from dist/) kills itself with SIGKILL at a named crash point
 * (BACKCHANNEL_CRASH_POINT, docs/operations.md) while a callback is in flight; the provider
 * sees the connection drop, retries against a fresh ingress, and the result is released
 * exactly once. The token authority and the sequencer run as processes too.
 */
describe('callback ingress killed -9 in the middle of a callback', () => {
  let nats: NatsServerHandle;
  let mesh: ProcessMesh;
  let platform: PlatformClient;
  let watcher: ReleaseWatcher;
  const ingresses: ServiceProcess[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    mesh = await ProcessMesh.start(nats, { 'token-authority': 1, 'ordering-sequencer': 1 });
    platform = new PlatformClient(mesh.of('token-authority').url);
    watcher = await ReleaseWatcher.start(nats.url);
  });

  afterAll(async () => {
    await Promise.all(ingresses.map((ingress) => ingress.terminate().catch(() => undefined)));
    await watcher?.close();
    await mesh?.stop();
    await nats?.cleanup();
  });

  async function startIngress(port: number, extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const ingress = new ServiceProcess('callback-ingress', port, { ...testEnv(nats, extra), LOG_LEVEL: 'warn' });
    ingresses.push(ingress);
    await ingress.start();
    return ingress;
  }

  const cases: { point: CrashPointName; stateAfterCrash: string; retryStatus: number }[] = [
    // Nothing was written: the token is still live, the retry is the first callback.
    { point: 'ingress.after_token_check', stateAfterCrash: 'pending', retryStatus: 202 },
    // The end is stored (the redeem) but unanswered: the retry finds its own write.
    { point: 'ingress.after_durable_write', stateAfterCrash: 'completed', retryStatus: 200 },
  ];

  it.each(cases)(
    'killed at $point: the retry answers $retryStatus and the result is released exactly once',
    async ({ point, stateAfterCrash, retryStatus }) => {
      const conversation = `crash-${point.replaceAll('.', '-')}`;
      await platform.openConversation(conversation);
      const item = await platform.register(conversation);
      // Registered after the item, so released after it: a fence for "no second release".
      const fence = await platform.register(conversation);
      const body = { result: { answer: 42, nested: { list: [1, 'two', null] } } };
      const port = await freePort();

      const crashing = await startIngress(port, { BACKCHANNEL_CRASH_POINT: point });
      const cut = await postCallback(crashing.url, item.work_item_id, item.token, body).then(
        (answer) => new Error(`expected the connection to drop, got ${answer.status}`),
        (error: unknown) => error,
      );
      expect(String(cut)).toMatch(/fetch failed/); // the connection dropped: no answer at all
      expect(await crashing.process.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(crashing.output().some((line) => line.includes(`"crash_point":"${point}"`))).toBe(true);
      expect((await platform.workItem(item.work_item_id)).state).toBe(stateAfterCrash);

      // The provider retries the same URL with the same token and body.
      const fresh = await startIngress(port);
      const retry = await postCallback(fresh.url, item.work_item_id, item.token, body);
      expect(retry.status).toBe(retryStatus);
      expect(retry.body).toEqual({
        status: 'accepted',
        work_item_id: item.work_item_id,
        duplicate: retryStatus === 200,
      });
      const again = await postCallback(fresh.url, item.work_item_id, item.token, body);
      expect(again.status).toBe(200);
      expect((await platform.workItem(item.work_item_id)).state).toBe('completed');

      expect((await postCallback(fresh.url, fence.work_item_id, fence.token, { result: 'fence' })).status).toBe(202);
      await eventually(
        () =>
          expect(watcher.of(conversation).map((release) => release.source.work_item_id)).toContain(fence.work_item_id),
        { timeoutMs: 20_000, message: 'the fence released' },
      );
      const released = watcher.of(conversation);
      expect(released.map((release) => release.source.work_item_id)).toEqual([item.work_item_id, fence.work_item_id]);
      expect(released[0].source.type).toBe('callback');
      expect(released[0].result).toEqual(body.result);
      expect(await fresh.terminate()).toEqual({ code: 0, signal: null });
    },
  );
});
