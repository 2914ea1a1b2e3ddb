import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type ConsumerMessages,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { CONSUMER_ACK_WAIT_MS } from '@backchannel/contracts';
import { JsonBucket } from './json-bucket.js';
import { PartitionLeases, type Lease } from './partition-leases.js';

/** What a handler decides for a message: the error type decides, not the handler's mood. */
export type Disposition = { type: 'ack' } | { type: 'nak'; delayMs: number } | { type: 'term'; reason: string };

export interface PartitionedConsumerOptions {
  role: string;
  stream: string;
  partitions: number;
  filterFor: (partition: number) => string;
  durableFor: (partition: number) => string;
  leases: JsonBucket<Lease | { at: number }>;
  handle: (message: JsMsg, partition: number) => Promise<Disposition>;
  onAcquired?: (partition: number) => Promise<void>;
  onLost?: (partition: number) => void;
  onError?: (error: unknown, partition?: number) => void;
  leaseTtlMs?: number;
  rebalanceEveryMs?: number;
  now?: () => number;
}

/**
 * Durable pull consumers, one per partition, run by the replica that holds the
 * partition's lease. `max_ack_pending: 1` keeps a partition strictly in stream order:
 * a message the handler naks comes back before any later one, so per-conversation order
 * survives failures and redeliveries.
 */
export class PartitionedConsumers {
  private readonly leases: PartitionLeases;
  private readonly running = new Map<number, { messages: ConsumerMessages; done: Promise<void> }>();
  private timer?: NodeJS.Timeout;
  private rebalancing?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly options: PartitionedConsumerOptions,
  ) {
    this.leases = new PartitionLeases(options.leases, {
      role: options.role,
      partitions: options.partitions,
      memberId: `${options.role}-${randomUUID()}`,
      leaseTtlMs: options.leaseTtlMs ?? 5_000,
      now: options.now ?? Date.now,
    });
  }

  async start(): Promise<void> {
    for (let partition = 0; partition < this.options.partitions; partition++) await this.ensureConsumer(partition);
    await this.rebalance();
    const every = this.options.rebalanceEveryMs ?? 1_000;
    this.timer = setInterval(() => void this.rebalance(), every);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.rebalancing;
    await Promise.all([...this.running.keys()].map((partition) => this.stopPartition(partition)));
    await this.leases.releaseAll().catch(() => undefined);
  }

  ownedPartitions(): number[] {
    return this.leases.ownedPartitions();
  }

  /**
   * One round: renew and move leases, then make the running consumers match the leases
   * held. Level-triggered on purpose: a partition whose start failed (broker away, consumer
   * lookup timed out), whose consume loop ended by itself, or whose loss was not reported
   * because the lease round failed half-way, is put right at the next round instead of
   * staying owned-but-idle (its conversations stuck) or running-but-lost for good.
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
    for (const partition of [...this.running.keys()]) {
      if (!owned.has(partition)) await this.stopPartition(partition);
    }
    for (const partition of owned) {
      if (this.running.has(partition) || this.stopped) continue;
      try {
        await this.startPartition(partition);
      } catch (error) {
        this.options.onError?.(error, partition);
      }
    }
  }

  private async ensureConsumer(partition: number): Promise<void> {
    const durable = this.options.durableFor(partition);
    const config = {
      durable_name: durable,
      filter_subject: this.options.filterFor(partition),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(CONSUMER_ACK_WAIT_MS),
      max_ack_pending: 1,
      max_deliver: -1,
    };
    try {
      await this.jsm.consumers.info(this.options.stream, durable);
    } catch {
      await this.jsm.consumers.add(this.options.stream, config);
    }
  }

  private async startPartition(partition: number): Promise<void> {
    if (this.running.has(partition) || this.stopped) return;
    await this.options.onAcquired?.(partition);
    const consumer = await this.js.consumers.get(this.options.stream, this.options.durableFor(partition));
    const messages = await consumer.consume({ max_messages: 64 });
    const done = (async () => {
      for await (const message of messages) await this.dispatch(message, partition);
    })()
      .catch((error) => this.options.onError?.(error, partition))
      .finally(() => {
        // The loop ended without stopPartition (the iterator failed or closed): forget it,
        // so the next round starts the partition again while its lease is held.
        if (this.running.get(partition)?.messages === messages) this.running.delete(partition);
      });
    this.running.set(partition, { messages, done });
  }

  private async stopPartition(partition: number): Promise<void> {
    const running = this.running.get(partition);
    if (!running) return;
    this.running.delete(partition);
    await running.messages.close().catch(() => undefined);
    await running.done;
    this.options.onLost?.(partition);
  }

  private async dispatch(message: JsMsg, partition: number): Promise<void> {
    let disposition: Disposition;
    try {
      disposition = await this.options.handle(message, partition);
    } catch (error) {
      this.options.onError?.(error, partition);
      disposition = { type: 'nak', delayMs: 250 };
    }
    if (disposition.type === 'ack') message.ack();
    else if (disposition.type === 'nak') message.nak(disposition.delayMs);
    else message.term(disposition.reason);
  }
}
