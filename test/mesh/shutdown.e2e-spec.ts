import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { performance } from 'node:perf_hooks';
import { CONTRACT_HEADERS, ERROR_CODE } from '@backchannel/contracts';
import { SHUTDOWN_READINESS_DELAY_MS } from '@backchannel/http';
import { eventually, freePort, type NatsServerHandle } from '@backchannel/testing';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { startNatsServer, startTestService, testEnv, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';
import { mapConcurrent } from '../support/pool.js';
import { ServiceProcess } from '../support/process-mesh.js';
import { ReleaseWatcher } from '../support/releases.js';

/** What one callback came to, seen from the provider's side. */
interface Outcome {
  workItemId: string;
  sentAt: number;
  answeredAt: number;
  /** The HTTP status, or the socket error's code when no answer came. */
  result: number | string;
  /** For an error answer: its contract code and its Retry-After header. */
  code?: string;
  retryAfter?: string | null;
}

function errorCode(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? String(error);
}

/**
 * CONTRACT.md §8: SIGTERM stops a service gracefully. The callback ingress runs as a real
 * process (dist/, built by the jest global setup) under a steady load of callbacks from 16
 * concurrent providers, with /readyz polled all along; it is sent SIGTERM mid-load. Then:
 * /readyz answered 503 before the listener closed (for SHUTDOWN_READINESS_DELAY_MS), every
 * request that reached the service was answered (202/200, or 503 once shutting down), every
 * 202 is released (nothing lost), no result was stored behind an unanswered request, and
 * the exit code is 0. What the providers saw is printed (a line of JSON) for the record.
 */
describe('callback ingress: graceful shutdown under load', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let sequencer: TestService;
  let ingress: ServiceProcess;
  let platform: PlatformClient;
  let watcher: ReleaseWatcher;

  beforeAll(async () => {
    nats = await startNatsServer();
    ta = await startTestService(TOKEN_AUTHORITY, nats, { LOG_LEVEL: 'warn' });
    sequencer = await startTestService(ORDERING_SEQUENCER, nats, { LOG_LEVEL: 'warn' });
    platform = new PlatformClient(ta.service.url);
    watcher = await ReleaseWatcher.start(nats.url);
    ingress = new ServiceProcess('callback-ingress', await freePort(), {
      ...testEnv(nats, { INGRESS_RATE_LIMIT_PER_SOURCE: '1000000' }),
      LOG_LEVEL: 'info',
    });
    await ingress.start();
  });

  afterAll(async () => {
    await ingress?.terminate().catch(() => undefined);
    await watcher?.close();
    await sequencer?.service.stop();
    await ta?.service.stop();
    await nats?.cleanup();
  });

  it('SIGTERM mid-load: readiness drops first, answered or refused unread, every 202 released, exit 0', async () => {
    const conversations = Array.from({ length: 8 }, (_, i) => `shutdown-${i}`);
    for (const conversation of conversations) await platform.openConversation(conversation);
    const items = await mapConcurrent(
      Array.from({ length: 500 }, (_, i) => i),
      16,
      (i) => platform.register(conversations[i % conversations.length], { ordered: false }),
    );

    // /readyz, polled back to back until the process is gone.
    const readiness: { at: number; result: number | string }[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const at = performance.now();
        const result = await fetch(`${ingress.url}/readyz`).then(
          async (answer) => {
            await answer.arrayBuffer();
            return answer.status;
          },
          (error: unknown) => errorCode(error),
        );
        readiness.push({ at, result });
      }
    })();

    // The load: 16 providers, each posting its next callback as soon as the last is answered.
    const outcomes: Outcome[] = [];
    let next = 0;
    let signalledAt = Number.POSITIVE_INFINITY;
    let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
    const provider = async (): Promise<void> => {
      while (next < items.length) {
        const item = items[next++];
        const sentAt = performance.now();
        const answer = await postCallback(ingress.url, item.work_item_id, item.token, { result: { n: next } }).then(
          (reply) => ({
            result: reply.status,
            code: reply.body?.errors?.[0]?.code as string | undefined,
            retryAfter: reply.headers.get(CONTRACT_HEADERS.retryAfter),
          }),
          (error: unknown) => ({ result: errorCode(error) }),
        );
        const result = answer.result;
        outcomes.push({ workItemId: item.work_item_id, sentAt, answeredAt: performance.now(), ...answer });
        if (!exit && outcomes.filter((o) => o.result === 202).length >= 150) {
          signalledAt = performance.now();
          exit = ingress.terminate();
        }
        // Once the listener is gone nothing more can reach it: the rest stays unsent.
        if (typeof result === 'string' && exit) break;
      }
    };
    await Promise.all(Array.from({ length: 16 }, provider));
    expect(exit).toBeDefined();
    const exited = await exit!;
    polling = false;
    await poller;

    // What was seen, for the record (docs/operations.md, Shutdown).
    const after = outcomes.filter((o) => o.sentAt >= signalledAt);
    const tally = (list: { result: number | string }[]) =>
      list.reduce<Record<string, number>>((counts, o) => ({ ...counts, [o.result]: (counts[o.result] ?? 0) + 1 }), {});
    const readyAfter = readiness.filter((r) => r.at >= signalledAt);
    const runs: string[] = [];
    for (let i = 0; i < readyAfter.length;) {
      let j = i;
      while (j + 1 < readyAfter.length && readyAfter[j + 1].result === readyAfter[i].result) j++;
      const [from, to] = [readyAfter[i].at - signalledAt, readyAfter[j].at - signalledAt].map(Math.round);
      runs.push(`${from}-${to} ms: ${readyAfter[i].result} x${j - i + 1}`);
      i = j + 1;
    }
    console.log(
      JSON.stringify({
        exit: exited,
        callbacks: tally(outcomes),
        sent_after_sigterm: tally(after),
        readyz_after_sigterm: runs,
      }),
    );

    expect(exited).toEqual({ code: 0, signal: null });

    // Readiness turned 503 while the service still answered, before the listener closed.
    const firstNotReady = readyAfter.findIndex((r) => r.result === 503);
    const firstRefused = readyAfter.findIndex((r) => typeof r.result === 'string');
    expect(firstNotReady).toBeGreaterThanOrEqual(0);
    if (firstRefused >= 0) expect(firstNotReady).toBeLessThan(firstRefused);
    expect(readyAfter.slice(0, firstNotReady).every((r) => r.result === 200)).toBe(true);

    // Every request that reached the service was answered: 202 (or 200), or 503 once it was
    // shutting down. Socket errors come only when the listener closes, after the readiness
    // delay: connections a provider opened (or was still opening) at that moment, whose
    // request was never read. Nothing was stored for them (checked below), so a retry works.
    const cut = outcomes.filter((o) => typeof o.result === 'string');
    for (const outcome of outcomes) {
      expect([202, 200, 503, 'ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET']).toContain(outcome.result);
    }
    for (const outcome of cut) {
      expect(outcome.answeredAt - signalledAt).toBeGreaterThanOrEqual(SHUTDOWN_READINESS_DELAY_MS);
    }
    expect(outcomes.filter((o) => o.result === 202).length).toBeGreaterThanOrEqual(150);
    const unavailable = outcomes.filter((o) => o.result === 503);
    expect(unavailable.length).toBeGreaterThan(0);
    // Each 503 is the contract's: code `unavailable` and a Retry-After (CONTRACT.md §3, §8).
    for (const outcome of unavailable) {
      expect(outcome.code).toBe(ERROR_CODE.unavailable);
      expect(Number(outcome.retryAfter)).toBeGreaterThanOrEqual(1);
    }

    // Nothing lost: every 202 completed and released once; nothing unanswered was stored.
    const accepted = outcomes.filter((o) => o.result === 202).map((o) => o.workItemId);
    await eventually(
      () => {
        const released = new Set(watcher.releases.map((r) => r.source.work_item_id));
        expect(accepted.filter((id) => !released.has(id))).toEqual([]);
      },
      { timeoutMs: 15_000 },
    );
    expect(watcher.releases.length).toBe(new Set(watcher.releases.map((r) => r.source.work_item_id)).size);
    // Not 202: 503, or cut before it was read. Either way nothing was stored.
    const refused = outcomes.filter((o) => o.result !== 202);
    const states = await mapConcurrent(refused, 16, async (o) => (await platform.workItem(o.workItemId)).state);
    expect(new Set(states)).toEqual(refused.length ? new Set(['pending']) : new Set());
  });
});
