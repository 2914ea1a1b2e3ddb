import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import {
  BUCKETS,
  RELEASE_STREAM,
  releaseSubject,
  SEQUENCER_STATE_BUCKET,
  STREAMS,
  conversationOpenedMsgId,
  registrationMsgId,
  type ReleaseMessage,
  type WorkItemEndedEvent,
  type WorkLogEvent,
} from '@backchannel/contracts';
import { Clock, loadConfig } from '@backchannel/config';
import {
  BrokerUnavailableError,
  JsonBucket,
  ReleaseLog,
  WorkLedger,
  connectNats,
  ensureBucket,
  ensureStream,
  type NatsHandles,
} from '@backchannel/messaging';
import { Metrics, Tracing, createLogger } from '@backchannel/observability';
import { startNatsServer, type NatsServerHandle } from '@backchannel/testing';
import type { ConversationOrderState } from '../src/ordering/release-order.js';
import { SequencerService } from '../src/ordering/sequencer.service.js';
import { SequencerStateStore } from '../src/ordering/sequencer-state.store.js';

const PARTITIONS = 4;

/**
 * A conversation's ordering state is a fold of its work log, so it can be rebuilt from the
 * log whatever the snapshot says, and two replicas that apply the same events (leases
 * overlap while one is paused) publish the same releases under the same ids. The release
 * stream may then hold a copy, never two different releases under one index.
 */
describe('sequencer replicas: state from the log, the same releases from every replica', () => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  let ledger: WorkLedger;
  let bucket: JsonBucket<ConversationOrderState>;

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'stale-state-test');
    for (const spec of STREAMS) await ensureStream(handles.jsm, spec, 1);
    const kvs = new Map(
      await Promise.all(BUCKETS.map(async (spec) => [spec.bucket, await ensureBucket(handles.nc, spec, 1)] as const)),
    );
    ledger = new WorkLedger(handles.js, handles.reads, PARTITIONS);
    bucket = new JsonBucket(kvs.get(SEQUENCER_STATE_BUCKET.bucket)!);
  });

  afterAll(async () => {
    await handles?.nc.close();
    await nats?.cleanup();
  });

  function replica(
    store: SequencerStateStore,
    releaseLog = new ReleaseLog(handles.js, handles.reads),
  ): SequencerService {
    const config = loadConfig({ NATS_URL: nats.url, SEQUENCER_PARTITIONS: String(PARTITIONS) });
    const logger = createLogger({
      service: 'sequencer-test',
      level: 'error',
      destination: new Writable({ write: (_c, _e, done) => done() }),
    });
    const sut = new SequencerService(
      store,
      ledger,
      releaseLog,
      new Clock(),
      logger,
      Tracing.off(),
      new Metrics('sequencer-test'),
      config,
    );
    return sut;
  }

  /** Writes a conversation with items 1 (ordered), 2 (unordered), 3 (ordered); returns the events with their stream sequences. */
  async function conversation(id: string) {
    const events: { event: WorkLogEvent; seq: number }[] = [];
    const at = new Date().toISOString();
    const opened = { type: 'conversation.opened', conversation_id: id, tenant_id: 't', at } as const;
    let last = await ledger.appendConversationEvent(opened, 0, conversationOpenedMsgId(id));
    events.push({ event: opened, seq: (last as { seq: number }).seq });
    const ids: string[] = [];
    for (const sequence of [1, 2, 3]) {
      const workItemId = `wi_${id}_${sequence}`;
      ids.push(workItemId);
      const registered = {
        type: 'work_item.registered',
        conversation_id: id,
        tenant_id: 't',
        work_item_id: workItemId,
        sequence,
        kind: 'tool',
        ordered: sequence !== 2,
        delivery: 'when_idle',
        timeout_ms: 3_600_000,
        expires_at: new Date(Date.now() + 3_600_000).toISOString(),
        at,
      } as const;
      last = await ledger.appendConversationEvent(
        registered,
        (last as { seq: number }).seq,
        registrationMsgId(workItemId),
      );
      events.push({ event: registered, seq: (last as { seq: number }).seq });
    }
    const end = async (sequence: number) => {
      const event: WorkItemEndedEvent = {
        type: 'work_item.ended',
        conversation_id: id,
        work_item_id: ids[sequence - 1],
        outcome: { state: 'completed', result: { n: sequence } },
        trace_id: '0'.repeat(32),
        at,
      };
      const recorded = await ledger.recordEnd(event);
      return { event, seq: recorded.end.seq };
    };
    return { events, end };
  }

  /** `conversation(id)`, applied by `a` and saved: its snapshot holds the registrations only. */
  async function savedRegistrations(id: string, a: SequencerService) {
    const partition = ledger.partitionOf(id);
    const written = await conversation(id);
    for (const { event, seq } of written.events) await a.apply(partition, event, seq, 1);
    await a.flush(partition, Number.POSITIVE_INFINITY, true);
    return { partition, ...written };
  }

  /** Every release stored for the conversation, in stream order. */
  async function storedReleases(id: string): Promise<ReleaseMessage[]> {
    const consumer = await jetstream(handles.nc).consumers.get(RELEASE_STREAM.name, {
      filter_subjects: releaseSubject(ledger.partitionOf(id), id),
    });
    const releases: ReleaseMessage[] = [];
    const info = await consumer.info();
    if (info.num_pending === 0) return releases;
    for await (const message of await consumer.consume()) {
      releases.push(message.json<ReleaseMessage>());
      if (message.info.pending === 0) break;
    }
    return releases;
  }

  /** One release per index, 1..n without a gap; copies (same id) must be identical. */
  function distinctResults(releases: ReleaseMessage[]): unknown[] {
    const byIndex = new Map<number, string>();
    for (const release of releases) {
      const json = JSON.stringify(release);
      expect(byIndex.get(release.release_index) ?? json).toBe(json);
      byIndex.set(release.release_index, json);
    }
    const indexes = [...byIndex.keys()].sort((a, b) => a - b);
    expect(indexes).toEqual(indexes.map((_, i) => i + 1));
    return indexes.map((index) => (JSON.parse(byIndex.get(index)!) as ReleaseMessage).result);
  }

  it('a replica with no snapshot rebuilds the state from the log before it applies an event', async () => {
    const id = 'rebuild-from-log';
    const partition = ledger.partitionOf(id);
    const a = replica(new SequencerStateStore(bucket));
    const { events, end } = await conversation(id);
    for (const { event, seq } of events) expect(await a.apply(partition, event, seq, 1)).toBe('applied');
    const third = await end(3);
    expect(await a.apply(partition, third.event, third.seq, 1)).toBe('applied');
    // A dies before its snapshot is written; B meets the conversation at its next event only.
    const b = replica(new SequencerStateStore(bucket));
    const second = await end(2);
    expect(await b.apply(partition, second.event, second.seq, 7)).toBe('applied');
    const first = await end(1);
    expect(await b.apply(partition, first.event, first.seq, 7)).toBe('applied');
    expect(distinctResults(await storedReleases(id))).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
  });

  it('a stale snapshot (written last by a paused replica) is completed from the log', async () => {
    const id = 'stale-snapshot';
    const a = replica(new SequencerStateStore(bucket));
    const { partition, end } = await savedRegistrations(id, a);
    const second = await end(2);
    const third = await end(3);
    for (const { event, seq } of [second, third]) expect(await a.apply(partition, event, seq, 1)).toBe('applied');
    // The snapshot still says "registrations only"; B must not release item 2 again under a new index.
    const b = replica(new SequencerStateStore(bucket));
    const first = await end(1);
    expect(await b.apply(partition, first.event, first.seq, 9)).toBe('applied');
    expect(distinctResults(await storedReleases(id))).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
  });

  it('two replicas applying the same events side by side release each index once, identically', async () => {
    const id = 'overlap';
    const partition = ledger.partitionOf(id);
    const [a, b] = [replica(new SequencerStateStore(bucket)), replica(new SequencerStateStore(bucket))];
    const { events, end } = await conversation(id);
    const all = [...events, await end(3), await end(2), await end(1)];
    // Each replica sees every event (each runs its own ordered consumer), at its own pace.
    for (const [i, { event, seq }] of all.entries()) {
      await a.apply(partition, event, seq, 1);
      if (i % 2 === 1)
        for (const earlier of all.slice(0, i + 1)) await b.apply(partition, earlier.event, earlier.seq, 2);
    }
    for (const { event, seq } of all) await b.apply(partition, event, seq, 2);
    const stored = await storedReleases(id);
    expect(distinctResults(stored)).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
  });

  it("a paused replica's older state never replaces a newer snapshot", async () => {
    const id = 'snapshot-never-back';
    const store = new SequencerStateStore(bucket);
    const [a, b] = [replica(store), replica(store)];
    const { partition, events, end } = await savedRegistrations(id, a);
    const third = await end(3);
    const second = await end(2);
    // B, the new owner, goes further and saves; A, paused, still holds only item 3's end.
    for (const { event, seq } of [...events, third, second]) await b.apply(partition, event, seq, 2);
    await b.flush(partition, Number.POSITIVE_INFINITY, true);
    await a.apply(partition, third.event, third.seq, 1);
    await a.flush(partition, Number.POSITIVE_INFINITY, true);
    expect((await store.get(partition, id))!.value.lastAppliedSeq).toBe(second.seq);
  });

  it('an end whose delivery was skipped is found in the work log and applied; one still on its way is not', async () => {
    const id = 'skipped-end';
    const partition = ledger.partitionOf(id);
    const sut = replica(new SequencerStateStore(bucket));
    const { events, end } = await conversation(id);
    for (const { event, seq } of events) await sut.apply(partition, event, seq, 1);
    const first = await end(1); // never delivered to this replica: the broker skipped it
    const third = await end(3);
    expect(await sut.apply(partition, third.event, third.seq, 1)).toBe('applied');
    const second = await end(2);
    expect(await sut.apply(partition, second.event, second.seq, 1)).toBe('applied');
    expect(distinctResults(await storedReleases(id))).toEqual([{ n: 2 }]);

    const found = await sut.findEnd(id, first.event.work_item_id);
    expect(found?.seq).toBe(first.seq);
    // Not yet behind what the run applied: it may still be on its way, so it waits.
    expect(await sut.repairMissedEnd(partition, found!, 1, first.seq - 1)).toBe(false);
    // Behind it: skipped for good, applied now; the results it held follow in order.
    expect(await sut.repairMissedEnd(partition, found!, 1, second.seq)).toBe(true);
    expect(distinctResults(await storedReleases(id))).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
    expect(await sut.repairMissedEnd(partition, found!, 1, second.seq)).toBe(false);
  });

  it('looks each outstanding item up on a schedule, and a blocking head every few seconds', async () => {
    const id = 'verify-schedule';
    const partition = ledger.partitionOf(id);
    const sut = replica(new SequencerStateStore(bucket));
    const { events, end } = await conversation(id);
    for (const { event, seq } of events) await sut.apply(partition, event, seq, 1);
    const ours = (now: number) => sut.dueVerifications(now).filter((due) => due.conversationId === id);
    const t0 = Date.now();
    expect(ours(t0)).toEqual([]);
    expect(ours(t0 + 10_500).map((due) => due.workItemId)).toHaveLength(3);
    expect(ours(t0 + 11_000)).toEqual([]);
    // Item 3 ends: results are now held behind item 1, the head, which is looked up every 5 s.
    const third = await end(3);
    await sut.apply(partition, third.event, third.seq, 1);
    const head = events[1].event as { work_item_id: string };
    expect(ours(t0 + 16_000).map((due) => due.workItemId)).toEqual([head.work_item_id]);
    expect(ours(t0 + 17_000)).toEqual([]);
    expect(ours(t0 + 21_500).map((due) => due.workItemId)).toEqual([head.work_item_id]);
  });

  it('a catch-up cut short by a broker failure resumes where it stopped when the event is retried', async () => {
    const id = 'catch-up-cut-short';
    const a = replica(new SequencerStateStore(bucket));
    const { partition, end } = await savedRegistrations(id, a);
    const second = await end(2);
    const third = await end(3);
    for (const { event, seq } of [second, third]) await a.apply(partition, event, seq, 1);
    // B takes over from the registrations-only snapshot; its first publish fails once.
    let failures = 1;
    const flaky = new (class extends ReleaseLog {
      override async publish(partitionOf: number, release: ReleaseMessage): Promise<void> {
        if (failures-- > 0) throw new BrokerUnavailableError(new Error('broker away'));
        return super.publish(partitionOf, release);
      }
    })(handles.js, handles.reads);
    const b = replica(new SequencerStateStore(bucket), flaky);
    const first = await end(1);
    await expect(b.apply(partition, first.event, first.seq, 9)).rejects.toThrow(BrokerUnavailableError);
    expect(await b.apply(partition, first.event, first.seq, 9)).toBe('applied');
    expect(distinctResults(await storedReleases(id))).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
  });
});
