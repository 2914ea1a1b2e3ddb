import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KV } from '@nats-io/kv';
import { LEASES_BUCKET } from '@backchannel/contracts';
import {
  JsonBucket,
  PartitionedConsumers,
  connectNats,
  ensureBucket,
  ensureStream,
  type NatsHandles,
} from '@backchannel/messaging';
import { eventually, startNatsServer, type NatsServerHandle } from '@backchannel/testing';

/**
 * Found by the chaos run: a replica that won a partition's lease but failed to start its
 * consumer (the broker was restarting at that moment) kept renewing the lease and never
 * consumed, so that partition's conversations stopped for good. Consumers now follow the
 * leases held at every round.
 */
describe('partitioned consumers follow the leases they hold', () => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  let leases: KV;

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'handover-test');
    await ensureStream(
      handles.jsm,
      {
        name: 'HANDOVER',
        subjects: ['handover.>'],
        maxAgeMs: 60_000,
        duplicateWindowMs: 60_000,
        maxMsgSize: 1024,
        allowDirect: true,
      },
      1,
    );
    leases = await ensureBucket(handles.nc, LEASES_BUCKET, 1);
  });

  afterAll(async () => {
    await handles?.nc.close();
    await nats?.cleanup();
  });

  it('a partition whose start failed once is started at a later round', async () => {
    const handled: number[] = [];
    let failures = 0;
    const sut = new PartitionedConsumers(handles.js, handles.jsm, {
      role: 'handover',
      stream: 'HANDOVER',
      partitions: 2,
      filterFor: (partition) => `handover.${partition}.>`,
      durableFor: (partition) => `handover-p${partition}`,
      leases: new JsonBucket(leases),
      rebalanceEveryMs: 100,
      handle: (_message, partition) => {
        handled.push(partition);
        return Promise.resolve({ type: 'ack' });
      },
      // The broker is away just as partition 1 is taken over.
      onAcquired: (partition) => {
        if (partition === 1 && failures++ === 0) return Promise.reject(new Error('broker unavailable'));
        return Promise.resolve();
      },
    });
    await sut.start();
    try {
      await handles.js.publish('handover.0.a', 'x');
      await handles.js.publish('handover.1.a', 'x');
      await eventually(() => expect([...new Set(handled)].sort()).toEqual([0, 1]), { timeoutMs: 5_000 });
      expect(failures).toBeGreaterThanOrEqual(2);
      expect(sut.ownedPartitions()).toEqual([0, 1]);
    } finally {
      await sut.stop();
    }
  });
});
