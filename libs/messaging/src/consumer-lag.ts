import type { JetStreamManager } from '@nats-io/jetstream';

/** One durable consumer's backlog, as JetStream reports it. */
export interface ConsumerLagSample {
  /** The durable name, e.g. `sequencer-p3`. */
  consumer: string;
  /** Messages in the stream matching its filter and not yet delivered (`num_pending`). */
  pending: number;
  /** Messages delivered and not yet acknowledged (`num_ack_pending`). */
  ackPending: number;
}

export interface ConsumerLagOptions {
  stream: string;
  /** The durable consumers to report; others on the stream are ignored. */
  consumers: readonly string[];
  /** Called after every successful poll with the consumers found (missing ones left out). */
  onSample: (samples: ConsumerLagSample[]) => void;
  onError?: (error: unknown) => void;
  /** Poll interval; default 5 s (a scrape every 15 s sees fresh values). */
  everyMs?: number;
}

/**
 * Polls the backlog of a service's durable consumers: one paged `CONSUMER.LIST` request
 * per interval (not one INFO per consumer), so 16 partitions cost one round trip. Every
 * replica of a service polls all of its role's consumers, not only the partitions it owns:
 * the numbers are the stream's, the same from every replica (alerts take `max by (consumer)`),
 * and they do not vanish while partitions move between replicas.
 */
export class ConsumerLagMonitor {
  private readonly wanted: ReadonlySet<string>;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly options: ConsumerLagOptions,
  ) {
    this.wanted = new Set(options.consumers);
  }

  /** Polls now, then every `everyMs`. A failed poll is reported and the next one tried. */
  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.options.everyMs ?? 5_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  /** One poll: the samples of the wanted consumers that exist. */
  async poll(): Promise<ConsumerLagSample[]> {
    const samples: ConsumerLagSample[] = [];
    for await (const info of this.jsm.consumers.list(this.options.stream)) {
      if (!this.wanted.has(info.name)) continue;
      samples.push({ consumer: info.name, pending: info.num_pending, ackPending: info.num_ack_pending });
    }
    return samples;
  }

  private tick(): Promise<void> {
    this.polling ??= (async () => {
      try {
        this.options.onSample(await this.poll());
      } catch (error) {
        this.options.onError?.(error);
      } finally {
        this.polling = undefined;
      }
    })();
    return this.polling;
  }
}
