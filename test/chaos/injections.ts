/**
 * Where the checker reads what reached the conversations: the transcript (BC_TRANSCRIPT,
 * what the conversation injector appended) when the injector runs, else the sequencer's
 * releases (BC_RELEASES). Both are read from the streams themselves, from the start, so
 * broker restarts lose nothing and a duplicate stored in a stream shows.
 */
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  KV_KEYS,
  RELEASE_STREAM,
  SEQUENCER_STATE_BUCKET,
  TRANSCRIPT_STREAM,
  WORK_STREAM,
  kvSafeId,
  partitionOf,
  workItemEndSubject,
  type ReleaseMessage,
  type TranscriptRecord,
} from '@backchannel/contracts';
import type { Delivered } from './checker.js';

export type InjectionSourceName = 'releases' | 'transcript';

/** Reads a stream incrementally: each `catchUp` fetches what was stored since the last one. */
export class InjectionLog {
  readonly delivered: Delivered[] = [];
  private lastSeq = 0;

  private constructor(
    private readonly nc: NatsConnection,
    readonly source: InjectionSourceName,
  ) {}

  static async open(url: string, source: InjectionSourceName): Promise<InjectionLog> {
    const nc = await connect({ servers: url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    return new InjectionLog(nc, source);
  }

  /** Reads up to the stream's current last message. */
  async catchUp(): Promise<void> {
    const stream = this.source === 'releases' ? RELEASE_STREAM.name : TRANSCRIPT_STREAM.name;
    const jsm = await jetstreamManager(this.nc, { timeout: 5_000 });
    const last = (await jsm.streams.info(stream)).state.last_seq;
    if (last <= this.lastSeq) return;
    const consumer = await jetstream(this.nc, { timeout: 5_000 }).consumers.get(stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.lastSeq + 1,
    });
    const messages = await consumer.consume({ max_messages: 1_000 });
    for await (const message of messages) {
      this.delivered.push(this.decode(message.data));
      this.lastSeq = message.seq;
      if (message.seq >= last) break;
    }
  }

  async close(): Promise<void> {
    await this.nc.close();
  }

  private decode(data: Uint8Array): Delivered {
    const entry = JSON.parse(new TextDecoder().decode(data)) as ReleaseMessage | TranscriptRecord;
    const place = 'release_index' in entry ? entry.release_index : entry.position;
    return {
      conversationId: entry.conversation_id,
      place,
      sourceType: entry.source.type,
      ...(entry.source.work_item_id !== undefined ? { workItemId: entry.source.work_item_id } : {}),
      ...(entry.source.sequence !== undefined ? { sequence: entry.source.sequence } : {}),
      body: entry.result ?? entry.content,
      ...(entry.progress?.id !== undefined ? { progressId: entry.progress.id } : {}),
    };
  }
}

/**
 * For a conversation whose results are missing: the sequencer's stored state (what it
 * believes came and went) next to the work log (what is there), for a failure report.
 */
export async function describeConversation(url: string, conversationId: string, partitions: number): Promise<string[]> {
  const nc = await connect({ servers: url.split(','), timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const partition = partitionOf(conversationId, partitions);
    const kv = await new Kvm(nc).open(SEQUENCER_STATE_BUCKET.bucket);
    const entry = await kv.get(KV_KEYS.sequencerState(partition, kvSafeId(conversationId)));
    const state = entry?.json<{
      lastAppliedSeq: number;
      nextReleaseIndex: number;
      headSequence: number | null;
      workItems: { workItemId: string; sequence: number; endSeq: number | null; finalStatus: string }[];
    }>();
    if (!state)
      return [
        `${conversationId} (p${partition}): no sequencer state by KV get`,
        ...(await scanKey(nc, partition, conversationId)),
      ];
    const unended = state.workItems.filter((item) => item.endSeq === null);
    const held = state.workItems.filter((item) => item.endSeq !== null && item.finalStatus === 'waiting');
    const lines = [
      `${conversationId} (p${partition}) state rev ${entry!.revision}: lastAppliedSeq ${state.lastAppliedSeq}, ` +
        `nextReleaseIndex ${state.nextReleaseIndex}, head #${state.headSequence}, ${state.workItems.length} items, ` +
        `no end seen: [${unended.map((item) => item.sequence).join(',')}], held: ${held.length}`,
    ];
    for (const item of unended.slice(0, 3)) {
      const end = await jsm.direct
        .getMessage(WORK_STREAM.name, { last_by_subj: workItemEndSubject(partition, conversationId, item.workItemId) })
        .catch(() => null);
      lines.push(`  #${item.sequence} ${item.workItemId}: end in the work log at seq ${end?.seq ?? 'none'}`);
    }
    return lines;
  } finally {
    await nc.close();
  }
}

/** The KV key's messages read from the bucket's stream itself, not through its per-subject index. */
async function scanKey(nc: NatsConnection, partition: number, conversationId: string): Promise<string[]> {
  const stream = `KV_${SEQUENCER_STATE_BUCKET.bucket}`;
  const subject = `$KV.${SEQUENCER_STATE_BUCKET.bucket}.${KV_KEYS.sequencerState(partition, kvSafeId(conversationId))}`;
  const jsm = await jetstreamManager(nc, { timeout: 5_000 });
  const info = await jsm.streams.info(stream);
  const lines = [
    `  ${stream}: ${info.state.messages} messages, ${info.state.num_subjects} subjects, last seq ${info.state.last_seq}`,
  ];
  const viaApi = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch((error: Error) => error.message);
  lines.push(
    `  last_by_subj via the stream API: ${typeof viaApi === 'string' ? viaApi : `seq ${viaApi?.seq ?? 'none'}`}`,
  );
  const consumer = await jetstream(nc, { timeout: 5_000 }).consumers.get(stream, { filter_subjects: subject });
  const found: { seq: number; lastAppliedSeq: number; items: number }[] = [];
  const messages = await consumer.consume({ max_messages: 100 });
  const last = info.state.last_seq;
  if (last > 0) {
    for await (const message of messages) {
      if (message.subject === subject) {
        const value = message.json<{ lastAppliedSeq: number; workItems: unknown[] }>();
        found.push({ seq: message.seq, lastAppliedSeq: value.lastAppliedSeq, items: value.workItems.length });
      }
      if (message.seq >= last || message.info.pending === 0) break;
    }
  }
  lines.push(`  in the stream: ${found.length} messages for the key: ${JSON.stringify(found.slice(-3))}`);
  if (found.length > 0 && (viaApi === null || typeof viaApi === 'string')) {
    lines.push(
      '  BROKER DEFECT: the key has a message in the stream, but the broker finds none by subject ' +
        '(per-subject index lost in a kill -9 restart; see docs/reliability.md)',
    );
  }
  return lines;
}

/** Every sequencer and injector consumer's state, for a failure report. */
export async function describeConsumers(url: string): Promise<string[]> {
  const nc = await connect({ servers: url.split(','), timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const lines: string[] = [];
    for (const stream of [WORK_STREAM.name, RELEASE_STREAM.name]) {
      for await (const info of jsm.consumers.list(stream)) {
        lines.push(
          `${info.name}: pending ${info.num_pending}, unacked ${info.num_ack_pending}, redelivered ${info.num_redelivered}, ` +
            `waiting ${info.num_waiting}, delivered ${info.delivered.stream_seq}, ack floor ${info.ack_floor.stream_seq}`,
        );
      }
    }
    return lines;
  } finally {
    await nc.close();
  }
}

/**
 * Whether the pipeline has settled: every sequencer consumer (and injector consumer, when
 * the transcript is the source) has nothing pending and nothing unacknowledged. Throws
 * with what is still moving, for `eventually`.
 */
export async function assertPipelineIdle(url: string, source: InjectionSourceName): Promise<void> {
  const nc = await connect({ servers: url.split(','), timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const busy: string[] = [];
    const watched: [string, string][] = [[WORK_STREAM.name, 'sequencer-']];
    if (source === 'transcript') watched.push([RELEASE_STREAM.name, 'injector-']);
    for (const [stream, prefix] of watched) {
      for await (const info of jsm.consumers.list(stream)) {
        if (!info.name.startsWith(prefix)) continue;
        if (info.num_pending > 0 || info.num_ack_pending > 0) {
          busy.push(`${info.name}: ${info.num_pending} pending, ${info.num_ack_pending} unacked`);
        }
      }
    }
    if (busy.length > 0) throw new Error(`pipeline still busy: ${busy.join('; ')}`);
  } finally {
    await nc.close();
  }
}
