import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WORK_ITEMS_BUCKET, type WorkItemRecord } from '@backchannel/contracts';
import {
  MirroredWorkItemRecords,
  WorkItemRecords,
  connectNats,
  ensureBucket,
  type NatsHandles,
} from '@backchannel/messaging';
import { eventually, startNatsServer, type NatsServerHandle } from '@backchannel/testing';

/**
 * The ingress's in-memory mirror of work item records: new records arrive through the KV
 * watch, a record leaves it once its deadline has passed (so it holds what can still be
 * called back in time, not every registration of the replay window), and one no longer
 * mirrored is still found, in the bucket.
 */
describe('work item records mirror', () => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  let store: WorkItemRecords;
  let mirror: MirroredWorkItemRecords;
  let nowMs = Date.parse('2026-12-03T12:00:00.000Z');

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'records-mirror-test');
    const kv = await ensureBucket(handles.nc, WORK_ITEMS_BUCKET, 1);
    store = new WorkItemRecords(kv);
    mirror = new MirroredWorkItemRecords(kv, () => nowMs);
    await mirror.start();
  });

  afterAll(async () => {
    mirror?.stop();
    await handles?.nc.close();
    await nats?.cleanup();
  });

  const record = (workItemId: string, expiresAt: string): WorkItemRecord => ({
    work_item_id: workItemId,
    conversation_id: 'conv-mirror',
    tenant_id: 'tenant-a',
    sequence: 1,
    kind: 'tool',
    ordered: true,
    delivery: 'when_idle',
    timeout_ms: 30_000,
    registered_at: '2026-12-03T11:59:30.000Z',
    expires_at: expiresAt,
    token_hash: 'a'.repeat(64),
  });

  it('drops a record at its deadline and still answers it from the bucket', async () => {
    const early = record('wi_mirror_early', '2026-12-03T12:00:10.000Z');
    const late = record('wi_mirror_late', '2026-12-03T12:05:00.000Z');
    await store.put(early);
    await store.put(late);
    await eventually(() => expect(mirror.size).toBe(2));

    nowMs = Date.parse(early.expires_at) - 1;
    mirror.pruneExpired();
    expect(mirror.size).toBe(2);

    nowMs = Date.parse(early.expires_at);
    mirror.pruneExpired();
    expect(mirror.size).toBe(1);
    expect(await mirror.get(late.work_item_id)).toEqual(late);
    // No longer mirrored, still there: a late callback (a 410, a replay) reads it.
    expect(await mirror.get(early.work_item_id)).toEqual(early);
  });
});
