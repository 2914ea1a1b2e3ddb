import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import {
  LEASES_BUCKET,
  WORK_STREAM,
  sequencerConsumerName,
  workPartitionFilter,
  type WorkLogEvent,
} from '@backchannel/contracts';
import { MeshConfig } from '@backchannel/config';
import { LOGGER, NATS_HANDLES, Readiness, type ServiceContext } from '@backchannel/http';
import {
  BrokerUnavailableError,
  JsonBucket,
  PartitionedConsumers,
  decodeJson,
  type Disposition,
  type NatsHandles,
} from '@backchannel/messaging';
import { withTraceId, type Logger } from '@backchannel/observability';
import { SequencerService } from './sequencer.service.js';

export const SERVICE_CONTEXT = Symbol('SERVICE_CONTEXT');

/** JetStream adapter: one durable consumer per owned partition of the work log. */
@Injectable()
export class WorkLogConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly consumers: PartitionedConsumers;
  private started = false;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(SERVICE_CONTEXT) context: ServiceContext,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly sequencer: SequencerService,
    readiness: Readiness,
    config: MeshConfig,
  ) {
    this.consumers = new PartitionedConsumers(nats.js, nats.jsm, {
      role: 'sequencer',
      stream: WORK_STREAM.name,
      partitions: config.SEQUENCER_PARTITIONS,
      filterFor: workPartitionFilter,
      durableFor: sequencerConsumerName,
      leases: new JsonBucket(context.buckets.get(LEASES_BUCKET.bucket)!),
      handle: (message, partition) => this.handle(message.data, message.seq, partition),
      onAcquired: (partition) => this.sequencer.adoptPartition(partition),
      onLost: (partition) => this.sequencer.forgetPartition(partition),
      onError: (error, partition) => this.logger.warn({ err: error, partition }, 'sequencer consumer error'),
    });
    readiness.addCheck('consumers', () => this.started);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.consumers.start();
    this.started = true;
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.consumers.stop();
    this.sequencer.deadlines.clearAll();
  }

  /** Decode, apply, and let the error type decide: broker trouble naks, garbage terminates. */
  private async handle(data: Uint8Array, streamSeq: number, partition: number): Promise<Disposition> {
    let event: WorkLogEvent;
    try {
      event = decodeJson<WorkLogEvent>(data);
    } catch {
      return { type: 'term', reason: 'undecodable work log event' };
    }
    try {
      // Lines logged while applying carry the event's trace (ends and progress have one).
      const traceId = 'trace_id' in event ? event.trace_id : undefined;
      const outcome = await withTraceId(traceId, () => this.sequencer.apply(partition, event, streamSeq));
      return outcome === 'conflict' ? { type: 'nak', delayMs: 50 } : { type: 'ack' };
    } catch (error) {
      if (!(error instanceof BrokerUnavailableError))
        this.logger.error({ err: error, partition }, 'applying a work log event failed');
      return { type: 'nak', delayMs: 250 };
    }
  }
}
