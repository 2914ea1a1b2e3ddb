import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { LEASES_BUCKET, KV_KEYS } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { startNatsServer } from '../support/mesh.js';
import { ProcessMesh } from '../support/process-mesh.js';
import { checkRun } from './checker.js';
import { InjectionLog, assertPipelineIdle } from './injections.js';
import { runWorkload } from './workload.js';

const CONVERSATIONS = 200;
const ITEMS = 20;
const PARTITIONS = 16;

/**
 * Issue 5: three sequencer replicas share the partitions; one is killed -9 halfway
 * through; the other two take its leases over and every conversation still gets all its
 * results, in order, exactly once.
 */
describe('ordering sequencer: three replicas, one killed -9 mid-run', () => {
  let nats: NatsServerHandle;
  let mesh: ProcessMesh;

  beforeAll(async () => {
    nats = await startNatsServer();
    mesh = await ProcessMesh.start(
      nats,
      { 'token-authority': 1, 'callback-ingress': 1, 'ordering-sequencer': 3 },
      { INGRESS_RATE_LIMIT_PER_SOURCE: '1000000', SEQUENCER_PARTITIONS: String(PARTITIONS) },
    );
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
    await nats?.cleanup();
  });

  it('200 conversations × 20 items in random completion order: complete, in order, no duplicates', async () => {
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
    const victim = mesh.of('ordering-sequencer', 1);
    let kill: Promise<{ killedAtMs: number; leasesMovedMs: number }> | undefined;
    const started = Date.now();

    const workload = await runWorkload(
      {
        prefix: `replicas-${seed}`,
        conversations: CONVERSATIONS,
        itemsPerConversation: ITEMS,
        llmShare: 0.2,
        unorderedShare: 0,
        progressShare: 0,
        timeoutMs: 600_000,
        seed,
      },
      {
        tokenAuthorityUrl: () => mesh.of('token-authority').url,
        registerConcurrency: 16,
        callbackConcurrency: 32,
        requestTimeoutMs: 10_000,
        giveUpAfterMs: 120_000,
        dropShare: 0,
        replayShare: 0,
        onProgress: (progress) => {
          if (kill || progress.callbacksSettled < progress.total / 2) return;
          kill = killAndWatchLeases(nats.url, () => victim.kill(), started);
        },
      },
    );
    const { killedAtMs, leasesMovedMs } = await kill!;

    const log = await InjectionLog.open(nats.url, 'releases');
    try {
      await eventually(
        async () => {
          await log.catchUp();
          expect(log.delivered.filter((entry) => entry.sourceType === 'callback').length).toBeGreaterThanOrEqual(
            workload.accepted.length,
          );
          await assertPipelineIdle(nats.url, 'releases', PARTITIONS);
        },
        { timeoutMs: 120_000, intervalMs: 500, message: 'every accepted result released' },
      );
      await log.catchUp();
      const allReleasedMs = Date.now() - started;
      const report = checkRun({ ...workload, delivered: log.delivered });

      const byConversation = new Map<string, typeof log.delivered>();
      for (const entry of log.delivered)
        byConversation.set(entry.conversationId, [...(byConversation.get(entry.conversationId) ?? []), entry]);
      const wrong = [...byConversation].filter(
        ([, entries]) =>
          entries.map((e) => e.sequence).join() !== range(ITEMS).join() ||
          entries.map((e) => e.place).join() !== range(ITEMS).join(),
      );

      process.stdout.write(
        [
          `sequencer replicas (seed ${seed}): 3 replicas, ${PARTITIONS} partitions, replica #1 killed -9 at ${(killedAtMs / 1000).toFixed(1)} s`,
          `  its leases held by the 2 survivors ${(leasesMovedMs / 1000).toFixed(1)} s after the kill; all released at ${(allReleasedMs / 1000).toFixed(1)} s`,
          `  conversations=${byConversation.size} registered=${workload.registered.length} accepted=${workload.accepted.length} released=${log.delivered.length}`,
          `  ${JSON.stringify(report.figures)} statuses=${JSON.stringify(workload.finalStatuses)} retries=${workload.retries}`,
          `  conversations not exactly sequences 1..${ITEMS} with release_index 1..${ITEMS}: ${wrong.length}`,
          '',
        ].join('\n'),
      );

      expect(workload.finalStatuses).toEqual({ '202': CONVERSATIONS * ITEMS });
      expect(report.figures).toMatchObject({ lost: 0, duplicated: 0, unexpected: 0, out_of_order: 0, timed_out: 0 });
      expect(report.figures.injected).toBe(CONVERSATIONS * ITEMS);
      expect(byConversation.size).toBe(CONVERSATIONS);
      expect(wrong.map(([conversationId]) => conversationId)).toEqual([]);
    } finally {
      await log.close();
    }
  }, 420_000);
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/**
 * Kills the replica, then waits until every partition's lease is live again and held by
 * exactly two owners: the survivors took the dead one's partitions over.
 */
async function killAndWatchLeases(
  url: string,
  killReplica: () => Promise<void>,
  started: number,
): Promise<{ killedAtMs: number; leasesMovedMs: number }> {
  const nc = await connect({ servers: url });
  try {
    const kv = await new Kvm(nc).open(LEASES_BUCKET.bucket);
    await killReplica();
    const killedAt = Date.now();
    await eventually(
      async () => {
        const owners = new Set<string>();
        for (let partition = 0; partition < PARTITIONS; partition++) {
          const entry = await kv.get(KV_KEYS.lease('sequencer', partition));
          const lease = entry?.json<{ owner: string; expires_at: number }>();
          if (!lease || lease.expires_at <= Date.now()) throw new Error(`partition ${partition} has no live lease`);
          owners.add(lease.owner);
        }
        expect(owners.size).toBe(2);
      },
      { timeoutMs: 60_000, intervalMs: 100, message: 'leases moved to the survivors' },
    );
    return { killedAtMs: killedAt - started, leasesMovedMs: Date.now() - killedAt };
  } finally {
    await nc.close();
  }
}
