import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type { Counter, Gauge, Histogram };

/** What `partitionBacklog` reads of each partition a replica runs (libs/messaging's `PartitionBacklog`). */
export interface PartitionBacklogSample {
  partition: number;
  undelivered: number;
  inFlight: number;
  delivered: number;
  written: number;
}

/**
 * One prom-client registry per app (two apps in one test process would otherwise
 * collide on default metric names). Project metrics are `backchannel_` prefixed;
 * labels never carry ids or secrets.
 */
export class Metrics {
  readonly registry = new Registry();

  constructor(readonly service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry });
  }

  counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.reuse(name) ?? new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return this.reuse(name) ?? new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    buckets: number[] = LATENCY_BUCKETS_SECONDS,
  ): Histogram<L> {
    return this.reuse(name) ?? new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /**
   * The backlog of the partitions a replica runs, read at each scrape:
   * `backchannel_consumer_pending_messages` (in the stream, not yet delivered),
   * `backchannel_consumer_ack_pending_messages` (delivered, not yet applied), and the stream
   * sequences `backchannel_consumer_delivered_sequence` and
   * `backchannel_consumer_checkpoint_sequence` (the checkpoint as written: a checkpoint that
   * stops below what was delivered is visible), labelled `consumer="<role>-p<partition>"` —
   * partitions are bounded configuration, never ids.
   */
  partitionBacklog(role: string, source: () => PartitionBacklogSample[]): void {
    const sample = (name: string, help: string, pick: (backlog: PartitionBacklogSample) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['consumer'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const backlog of source()) this.set({ consumer: `${role}-p${backlog.partition}` }, pick(backlog));
        },
      });
    sample(
      'backchannel_consumer_pending_messages',
      'Messages of an owned partition in the stream and not yet delivered to this replica',
      (backlog) => backlog.undelivered,
    );
    sample(
      'backchannel_consumer_ack_pending_messages',
      'Messages of an owned partition delivered to this replica and not yet applied',
      (backlog) => backlog.inFlight,
    );
    sample(
      'backchannel_consumer_delivered_sequence',
      'Stream sequence of the last message of an owned partition delivered to this replica',
      (backlog) => backlog.delivered,
    );
    sample(
      'backchannel_consumer_checkpoint_sequence',
      'Stream sequence of the checkpoint last written for an owned partition (a restart resumes after it)',
      (backlog) => backlog.written,
    );
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private reuse<T>(name: string): T | undefined {
    return this.registry.getSingleMetric(name) as T | undefined;
  }
}

/** Latency buckets from 0.5 ms to 30 s: injection targets are single-digit milliseconds. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
