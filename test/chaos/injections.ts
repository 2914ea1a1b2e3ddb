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
  LEASES_BUCKET,
  RELEASE_STREAM,
  SEQUENCER_STATE_BUCKET,
  TRANSCRIPT_STREAM,
  WORK_STREAM,
  kvSafeId,
  partitionOf,
  releasePartitionFilter,
  workItemEndSubject,
  workPartitionFilter,
  type PartitionCheckpoint,
  type ReleaseMessage,
  type TranscriptRecord,
} from '@backchannel/contracts';
import type { Delivered } from './checker.js';

/** `SEQUENCER_PARTITIONS` unless a run says otherwise. */
const DEFAULT_PARTITIONS = 16;

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

/** Where each role's partitions stand: last message in the stream vs the checkpoint applied. */
async function partitionProgress(
  url: string,
  roles: { role: string; stream: string; filterFor: (partition: number) => string }[],
  partitions: number,
): Promise<{ name: string; lastSeq: number; checkpoint: number }[]> {
  const nc = await connect({ servers: url.split(','), timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const leases = await new Kvm(nc).open(LEASES_BUCKET.bucket);
    const progress: { name: string; lastSeq: number; checkpoint: number }[] = [];
    for (const { role, stream, filterFor } of roles) {
      for (let partition = 0; partition < partitions; partition++) {
        const last = await jsm.direct.getMessage(stream, { last_by_subj: filterFor(partition) }).catch(() => null);
        const entry = await leases.get(KV_KEYS.checkpoint(role, partition));
        const checkpoint = entry && entry.length > 0 ? (entry.json<PartitionCheckpoint>().seq ?? 0) : 0;
        progress.push({ name: `${role}-p${partition}`, lastSeq: last?.seq ?? 0, checkpoint });
      }
    }
    return progress;
  } finally {
    await nc.close();
  }
}

const SEQUENCER_ROLE = { role: 'sequencer', stream: WORK_STREAM.name, filterFor: workPartitionFilter };
const INJECTOR_ROLE = { role: 'injector', stream: RELEASE_STREAM.name, filterFor: releasePartitionFilter };

/** Every sequencer and injector partition's progress, for a failure report. */
export async function describeConsumers(url: string, partitions = DEFAULT_PARTITIONS): Promise<string[]> {
  const progress = await partitionProgress(url, [SEQUENCER_ROLE, INJECTOR_ROLE], partitions);
  return progress.map((p) => `${p.name}: last message ${p.lastSeq}, checkpoint ${p.checkpoint}`);
}

/**
 * Whether the pipeline has settled: every sequencer partition (and injector partition,
 * when the transcript is the source) has its checkpoint at its last message. Throws with
 * what is still moving, for `eventually`.
 */
export async function assertPipelineIdle(
  url: string,
  source: InjectionSourceName,
  partitions = DEFAULT_PARTITIONS,
): Promise<void> {
  const roles = source === 'transcript' ? [SEQUENCER_ROLE, INJECTOR_ROLE] : [SEQUENCER_ROLE];
  const busy = (await partitionProgress(url, roles, partitions))
    .filter((p) => p.checkpoint < p.lastSeq)
    .map((p) => `${p.name}: ${p.lastSeq - p.checkpoint} above the checkpoint`);
  if (busy.length > 0) throw new Error(`pipeline still busy: ${busy.join('; ')}`);
}
