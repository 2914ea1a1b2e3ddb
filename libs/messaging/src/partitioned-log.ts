import { randomUUID } from 'node:crypto';
import {
  DeliverPolicy,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { KV_KEYS, type PartitionCheckpoint } from '@backchannel/contracts';
import { CheckpointTracker } from './checkpoint-tracker.js';
import type { JsonBucket, Versioned } from './json-bucket.js';
import { KeyedSerialQueue } from './keyed-serial-queue.js';
import { PartitionLeases, type LeaseBucketValue } from './partition-leases.js';

/** One message of a partition, as the handler sees it. */
export interface LogMessage {
  /** Stream sequence: unique and rising within the stream. */
  seq: number;
  subject: string;
  data: Uint8Array;
}

/** What a partition's run reports about its backlog, for metrics and idleness checks. */
export interface PartitionBacklog {
  partition: number;
  /** In the stream for this partition and not yet delivered (as of the last delivery). */
  undelivered: number;
  /** Delivered and not yet fully applied. */
  inFlight: number;
  /** Every message of the partition at or below this stream sequence is applied. */
  checkpoint: number;
  /** Stream sequence of the last message delivered to this run. */
  delivered: number;
  /**
   * The checkpoint as last written: a restart resumes after it. It trails `delivered` by the
   * states not yet saved (at most a few seconds); one that stays behind is the
   * `BackchannelCheckpointStuck` alert.
   */
  written: number;
}

export interface PartitionedLogOptions {
  /** `sequencer` or `injector`: each role shares the partitions among its own replicas. */
  role: string;
  stream: string;
  partitions: number;
  filterFor: (partition: number) => string;
  /** The key whose messages are applied one at a time, in stream order (the conversation id). */
  keyOf: (subject: string) => string | undefined;
  /** Leases, heartbeats and checkpoints. */
  bucket: JsonBucket<LeaseBucketValue>;
  /**
   * Applies one message. Idempotent: after a crash, messages above the last checkpoint
   * are delivered again. A throw is retried (with backoff) before any later message of
   * the same key, so per-key order holds through broker outages.
   */
  handle: (message: LogMessage, partition: number, session: PartitionSession) => Promise<void>;
  /** Called when this replica takes a partition over, before its messages flow. */
  onAcquired?: (partition: number, session: PartitionSession) => Promise<void> | void;
  /** Called once a partition's run has stopped (lease lost, or shutdown). */
  onLost?: (partition: number) => void;
  /**
   * Makes durable what the handler keeps in memory, before a checkpoint is written, and
   * returns how far that now covers: the checkpoint written is at most this (a handler
   * may spread its saves over several rounds). `final`: the run is stopping, save all.
   */
  beforeCheckpoint?: (partition: number, candidate: number, final: boolean) => Promise<number>;
  onError?: (error: unknown, partition?: number) => void;
  leaseTtlMs?: number;
  rebalanceEveryMs?: number;
  checkpointEveryMs?: number;
  /** Messages of one partition delivered and not yet applied, at most. */
  maxInFlight?: number;
  now?: () => number;
}

/** One run of a partition on this replica: a handle for tasks that must queue with its messages. */
export interface PartitionSession {
  /** Unique per run in this process: state cached under an older run is not continuous. */
  readonly id: number;
  /** Queues `task` with the partition's messages of `key`, after those already queued. */
  exclusive(key: string, task: () => Promise<void>): Promise<void>;
}

class RunStopped extends Error {
  constructor() {
    super('partition run stopped');
  }
}

const MAX_RETRY_DELAY_MS = 2_000;
const PULL_EXPIRES_MS = 30_000;
const PULL_IDLE_HEARTBEAT_MS = 500;
/** No delivery for this long, with messages waiting in the stream: the read is restarted. */
const STALL_MS = 5_000;
const STOP_WAIT_MS = 10_000;
const CHECKPOINT_WRITE_ATTEMPTS = 3;
let sessionIds = 0;

/**
 * The partitions of a stream, each applied by the replica holding its lease:
 *
 * - an **ordered consumer** per owned partition starts after the partition's checkpoint
 *   and delivers every message once, in stream order, with no gap (it resets itself on a
 *   gap or a broker restart); there are no acks and no redeliveries to wait for;
 * - messages of **different keys run concurrently**, those of one key one at a time in
 *   stream order (`KeyedSerialQueue`): one slow conversation does not hold up the others;
 * - the **checkpoint** (the sequence below the oldest message in flight) is written every
 *   `checkpointEveryMs`, after `beforeCheckpoint`; a replica that takes over (or restarts)
 *   starts after it, so nothing is skipped and only the little above it is applied again.
 *
 * Leases make ownership efficient, not exclusive (a paused replica can outlive its lease):
 * handlers must be idempotent and their effects compare-and-set or deterministic, so two
 * replicas applying the same messages briefly never apply anything twice.
 */
export class PartitionedLog {
  private readonly leases: PartitionLeases;
  private readonly runs = new Map<number, PartitionRun>();
  private timer?: NodeJS.Timeout;
  private rebalancing?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly options: PartitionedLogOptions,
  ) {
    this.leases = new PartitionLeases(options.bucket, {
      role: options.role,
      partitions: options.partitions,
      memberId: `${options.role}-${randomUUID()}`,
      leaseTtlMs: options.leaseTtlMs ?? 5_000,
      now: options.now ?? Date.now,
    });
  }

  async start(): Promise<void> {
    await this.rebalance();
    this.timer = setInterval(() => void this.rebalance(), this.options.rebalanceEveryMs ?? 1_000);
  }

  /** Stops every run (each finishes what it is applying and writes its checkpoint), then gives the leases back. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.rebalancing;
    await Promise.all([...this.runs.keys()].map((partition) => this.stopPartition(partition)));
    await this.leases.releaseAll().catch(() => undefined);
  }

  ownedPartitions(): number[] {
    return this.leases.ownedPartitions();
  }

  /** The backlog of every partition this replica runs. */
  backlog(): PartitionBacklog[] {
    return [...this.runs.values()].map((run) => run.backlog());
  }

  /**
   * Runs `task` in the partition's current run, queued with the messages of `key`; false
   * when this replica does not run the partition (now).
   */
  async exclusive(
    partition: number,
    key: string,
    task: (session: PartitionSession, applied: number) => Promise<void>,
  ): Promise<boolean> {
    const run = this.runs.get(partition);
    if (!run || run.ended) return false;
    await run.exclusive(key, () => task(run, run.backlog().checkpoint));
    return true;
  }

  /**
   * One round: renew and move leases, then make the runs match the leases held.
   * Level-triggered: a partition whose start failed, or whose run ended by itself, is put
   * right at the next round instead of staying owned-but-idle.
   */
  private rebalance(): Promise<void> {
    if (this.rebalancing || this.stopped) return this.rebalancing ?? Promise.resolve();
    this.rebalancing = (async () => {
      try {
        await this.leases.rebalance();
      } catch (error) {
        this.options.onError?.(error);
      }
      try {
        await this.reconcile();
      } finally {
        this.rebalancing = undefined;
      }
    })();
    return this.rebalancing;
  }

  private async reconcile(): Promise<void> {
    const owned = new Set(this.leases.ownedPartitions());
    for (const partition of [...this.runs.keys()]) {
      if (!owned.has(partition) || this.runs.get(partition)?.ended) await this.stopPartition(partition);
    }
    for (const partition of owned) {
      if (this.runs.has(partition) || this.stopped) continue;
      try {
        await this.startPartition(partition);
      } catch (error) {
        this.options.onError?.(error, partition);
      }
    }
  }

  private async startPartition(partition: number): Promise<void> {
    const stored = await this.options.bucket.get(KV_KEYS.checkpoint(this.options.role, partition));
    const run = new PartitionRun(this.js, this.jsm, this.options, partition, checkpointOf(stored));
    await this.options.onAcquired?.(partition, run);
    await run.start();
    this.runs.set(partition, run);
  }

  private async stopPartition(partition: number): Promise<void> {
    const run = this.runs.get(partition);
    if (!run) return;
    this.runs.delete(partition);
    await run.stop();
    this.options.onLost?.(partition);
  }
}

/** A partition's checkpoint as stored (0 and no revision when there is none yet). */
interface StoredCheckpoint {
  seq: number;
  revision: number | null;
}

function checkpointOf(stored: Versioned<LeaseBucketValue> | null): StoredCheckpoint {
  const seq = (stored?.value as PartitionCheckpoint | undefined)?.seq;
  return { seq: typeof seq === 'number' ? seq : 0, revision: stored?.revision ?? null };
}

/** One partition on this replica, from taking it over to giving it up. */
class PartitionRun implements PartitionSession {
  readonly id = ++sessionIds;
  ended = false;
  private readonly tracker: CheckpointTracker;
  private readonly queue = new KeyedSerialQueue();
  private readonly maxInFlight: number;
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private stopping = false;
  private undelivered = 0;
  private written: number;
  /** Revision of the stored checkpoint as last read or written: the next write's compare-and-set. */
  private revision: number | null;
  private writing?: Promise<void>;
  private checkpointTimer?: NodeJS.Timeout;
  private wakeReader?: () => void;

  private lastDeliveryAt = Date.now();
  private probing = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly options: PartitionedLogOptions,
    private readonly partition: number,
    startAfter: StoredCheckpoint,
  ) {
    this.tracker = new CheckpointTracker(startAfter.seq);
    this.written = startAfter.seq;
    this.revision = startAfter.revision;
    this.maxInFlight = options.maxInFlight ?? 1_024;
  }

  async start(): Promise<void> {
    const startSeq = this.written + 1;
    const consumer = await this.js.consumers.get(this.options.stream, {
      filter_subjects: this.options.filterFor(this.partition),
      ...(startSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq } : {}),
    });
    // Long pulls, heartbeats every 500 ms (the client's floor). nats-server 2.9.10 now and
    // then lets a pull expire without the 408 that tells the client so (seen by watching
    // each pull's status events: a pull sent, no 408 when it expired, then two missed
    // heartbeats a second later); until the client notices, nothing flows to the partition.
    // That happened to about one expiry in forty; with 2 s pulls it was the e2e p99.9 of a
    // second. A 30 s pull under load ends by being filled (the client pulls again when a
    // quarter is left), not by expiring, and an idle partition's expires every 30 s. The
    // client's own recovery after a broker restart retries on a backoff of `expires`: the
    // stall probe below restarts the run long before that.
    this.messages = await consumer.consume({
      max_messages: 512,
      expires: PULL_EXPIRES_MS,
      idle_heartbeat: PULL_IDLE_HEARTBEAT_MS,
    });
    this.loop = this.read(this.messages)
      .catch((error) => this.options.onError?.(error, this.partition))
      .finally(() => {
        this.ended = true;
      });
    this.checkpointTimer = setInterval(() => {
      void this.writeCheckpoint();
      void this.probeStall();
    }, this.options.checkpointEveryMs ?? 250);
  }

  exclusive(key: string, task: () => Promise<void>): Promise<void> {
    return this.queue.run(key, () => this.retrying(task));
  }

  backlog(): PartitionBacklog {
    return {
      partition: this.partition,
      undelivered: this.undelivered,
      inFlight: this.tracker.pending,
      checkpoint: this.tracker.checkpoint,
      delivered: this.tracker.lastDelivered,
      written: this.written,
    };
  }

  /** Stops reading, lets what is being applied finish (bounded), and writes the checkpoint. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.checkpointTimer);
    this.wakeReader?.();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
    await Promise.race([this.queue.idle(), delay(STOP_WAIT_MS)]);
    // A write already under way may hold an older checkpoint: let it land, then write the last.
    await this.writing;
    await this.writeCheckpoint(true);
  }

  private async read(messages: ConsumerMessages): Promise<void> {
    for await (const message of messages) {
      if (this.stopping) break;
      this.deliver(message);
      while (this.tracker.pending >= this.maxInFlight && !this.stopping) {
        await new Promise<void>((resolve) => (this.wakeReader = resolve));
      }
    }
  }

  private deliver(message: JsMsg): void {
    const seq = message.seq;
    this.lastDeliveryAt = Date.now();
    if (!this.tracker.delivered(seq)) return;
    this.undelivered = message.info.pending;
    const key = this.options.keyOf(message.subject);
    const logMessage: LogMessage = { seq, subject: message.subject, data: message.data };
    if (key === undefined) {
      this.finish(seq);
      return;
    }
    this.queue
      .run(key, () => this.retrying(() => this.options.handle(logMessage, this.partition, this)))
      .then(
        () => this.finish(seq),
        // Stopped before it was applied: it stays above the checkpoint, for the next owner.
        () => undefined,
      );
  }

  private finish(seq: number): void {
    this.tracker.finished(seq);
    if (this.tracker.pending < this.maxInFlight) {
      this.wakeReader?.();
      this.wakeReader = undefined;
    }
  }

  /** Runs a task, retrying with backoff until it succeeds or the run stops. */
  private async retrying(task: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopping) throw new RunStopped();
      try {
        await task();
        return;
      } catch (error) {
        this.options.onError?.(error, this.partition);
        // Broker trouble is expected and quiet; a step that keeps failing is said out loud.
        if (attempt > 0 && attempt % 16 === 0) {
          const reason = (error as Error)?.message ?? String(error);
          this.options.onError?.(new Error(`a step still fails after ${attempt} attempts: ${reason}`), this.partition);
        }
        await delay(Math.min(MAX_RETRY_DELAY_MS, 50 * 2 ** attempt));
      }
    }
  }

  /**
   * A read that stopped delivering while the stream has more for the partition (seen after
   * broker restarts: the client's recreated consumer can sit waiting) ends the run, and the
   * next lease round starts it again after its checkpoint. Checked when nothing arrived
   * for `STALL_MS` and nothing is in flight: one direct get of the partition's last message.
   */
  private async probeStall(): Promise<void> {
    if (this.probing || this.stopping || this.ended) return;
    if (this.tracker.pending > 0 || Date.now() - this.lastDeliveryAt < STALL_MS) return;
    this.probing = true;
    try {
      const last = await this.jsm.direct.getMessage(this.options.stream, {
        last_by_subj: this.options.filterFor(this.partition),
      });
      if (last && last.seq > this.tracker.lastDelivered && Date.now() - this.lastDeliveryAt >= STALL_MS) {
        this.options.onError?.(
          new Error(`partition read stalled below stream sequence ${last.seq}; starting it again`),
          this.partition,
        );
        this.ended = true;
        await this.messages?.close().catch(() => undefined);
      }
    } catch {
      // Broker away or the partition empty: nothing to tell yet.
    } finally {
      this.lastDeliveryAt = Math.max(this.lastDeliveryAt, Date.now() - STALL_MS / 2);
      this.probing = false;
    }
  }

  private writeCheckpoint(final = false): Promise<void> {
    if (this.writing) return this.writing;
    const candidate = this.tracker.checkpoint;
    if (candidate <= this.written) return Promise.resolve();
    const writing = this.persist(candidate, final).finally(() => {
      if (this.writing === writing) this.writing = undefined;
    });
    this.writing = writing;
    return writing;
  }

  private async persist(candidate: number, final: boolean): Promise<void> {
    try {
      const covered = (await this.options.beforeCheckpoint?.(this.partition, candidate, final)) ?? candidate;
      const checkpoint = Math.min(candidate, covered);
      if (checkpoint <= this.written) return;
      this.written = await this.advance(checkpoint);
    } catch (error) {
      this.options.onError?.(error, this.partition);
    }
  }

  /**
   * Stores the checkpoint by compare-and-set, never lowering it, and returns the one now
   * stored. A replica paused past its lease still writes when it comes back and stops its
   * run; a plain put then replaced its successor's higher checkpoint with its own, and with
   * nothing new in the partition it stayed behind (found by a chaos run, defect 5 of
   * docs/reliability.md). A higher stored checkpoint is as good as ours: whoever wrote it
   * applied and saved everything up to it.
   */
  private async advance(seq: number): Promise<number> {
    const key = KV_KEYS.checkpoint(this.options.role, this.partition);
    const value: PartitionCheckpoint = { seq, at: new Date().toISOString() };
    for (let attempt = 0; attempt < CHECKPOINT_WRITE_ATTEMPTS; attempt++) {
      const revision =
        this.revision === null
          ? await this.options.bucket.create(key, value)
          : await this.options.bucket.update(key, value, this.revision);
      if (revision !== false) {
        this.revision = revision;
        return seq;
      }
      const stored = checkpointOf(await this.options.bucket.get(key));
      this.revision = stored.revision;
      if (stored.seq >= seq) return stored.seq;
    }
    // Another writer moved it every time (or a value it cannot read is in the way): said
    // out loud, and the next round tries again.
    this.options.onError?.(
      new Error(`checkpoint ${seq} not written: ${CHECKPOINT_WRITE_ATTEMPTS} compare-and-set attempts lost`),
      this.partition,
    );
    return this.written;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
