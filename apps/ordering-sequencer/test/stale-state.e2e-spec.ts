import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import {
  BUCKETS,
  RELEASE_STREAM,
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
import { Metrics, createLogger } from '@backchannel/observability';
import { startNatsServer, type NatsServerHandle } from '@backchannel/testing';
import type { ConversationOrderState } from '../src/ordering/release-order.js';
import { SequencerService } from '../src/ordering/sequencer.service.js';
import { SequencerStateStore } from '../src/ordering/sequencer-state.store.js';

/** A store whose next save is stored by the broker but whose answer never arrives. */
class LossyStore extends SequencerStateStore {
  loseNextAnswer = false;

  override async save(partition: number, state: ConversationOrderState, revision: number | null) {
    const saved = await super.save(partition, state, revision);
    if (!this.loseNextAnswer) return saved;
    this.loseNextAnswer = false;
    throw new BrokerUnavailableError(new Error('timeout'));
  }
}

const PARTITIONS = 4;

/**
 * Found by the chaos run: two sequencer replicas (or one whose save answer was lost) with a
 * cached, stale conversation state released a result under a release index already used,
 * so a later result took its place and the right one was dropped as a duplicate id.
 */
describe('sequencer: releases never come from a stale conversation state', () => {
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
    ledger = new WorkLedger(handles.js, handles.jsm, PARTITIONS);
    bucket = new JsonBucket(kvs.get(SEQUENCER_STATE_BUCKET.bucket)!);
  });

  afterAll(async () => {
    await handles?.nc.close();
    await nats?.cleanup();
  });

  function replica(store: SequencerStateStore): SequencerService {
    const config = loadConfig({ NATS_URL: nats.url, SEQUENCER_PARTITIONS: String(PARTITIONS) });
    const logger = createLogger({
      service: 'sequencer-test',
      level: 'error',
      destination: new Writable({ write: (_c, _e, done) => done() }),
    });
    const sut = new SequencerService(
      store,
      ledger,
      new ReleaseLog(handles.js),
      new Clock(),
      logger,
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

  async function releasedResults(id: string): Promise<unknown[]> {
    const consumer = await jetstream(handles.nc).consumers.get(RELEASE_STREAM.name, {
      filter_subjects: `bc.release.*.${id}`,
    });
    const results: unknown[] = [];
    const info = await consumer.info();
    if (info.num_pending === 0) return results;
    for await (const message of await consumer.consume()) {
      results.push(message.json<ReleaseMessage>().result);
      if (message.info.pending === 0) break;
    }
    return results;
  }

  it('a replica whose save answer was lost re-reads the state before it releases again', async () => {
    const id = 'stale-lost-answer';
    const partition = ledger.partitionOf(id);
    const store = new LossyStore(bucket);
    const [a, b] = [replica(store), replica(new SequencerStateStore(bucket))];
    const { events, end } = await conversation(id);
    for (const { event, seq } of events) expect(await a.apply(partition, event, seq)).toBe('applied');
    const third = await end(3);
    expect(await a.apply(partition, third.event, third.seq)).toBe('applied');
    // The unordered item's release is stored, and so is the state, but A never hears it...
    const second = await end(2);
    store.loseNextAnswer = true;
    await expect(a.apply(partition, second.event, second.seq)).rejects.toThrow(BrokerUnavailableError);
    // ...its redelivery goes to B, which finds it applied; the next event goes to A.
    expect(await b.apply(partition, second.event, second.seq)).toBe('redelivery');
    const first = await end(1);
    let outcome = await a.apply(partition, first.event, first.seq);
    if (outcome === 'conflict') outcome = await a.apply(partition, first.event, first.seq);
    expect(outcome).toBe('applied');
    expect(await releasedResults(id)).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
  });

  it('a replica that cached a conversation another replica moved on does not release from it', async () => {
    const id = 'stale-overlap';
    const partition = ledger.partitionOf(id);
    const [a, b] = [replica(new SequencerStateStore(bucket)), replica(new SequencerStateStore(bucket))];
    const { events, end } = await conversation(id);
    for (const { event, seq } of events) expect(await a.apply(partition, event, seq)).toBe('applied');
    const third = await end(3);
    expect(await a.apply(partition, third.event, third.seq)).toBe('applied');
    // Leases overlap: B takes the next event of the partition and releases the unordered item.
    const second = await end(2);
    expect(await b.apply(partition, second.event, second.seq)).toBe('applied');
    const first = await end(1);
    let outcome = await a.apply(partition, first.event, first.seq);
    if (outcome === 'conflict') outcome = await a.apply(partition, first.event, first.seq);
    expect(outcome).toBe('applied');
    expect(await releasedResults(id)).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
  });
});
