import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import {
  LEASES_BUCKET,
  WORK_STREAM,
  conversationOfPartitionedSubject,
  workPartitionFilter,
  type WorkLogEvent,
} from '@backchannel/contracts';
import { MeshConfig } from '@backchannel/config';
import { LOGGER, NATS_HANDLES, Readiness, type ServiceContext } from '@backchannel/http';
import {
  BrokerUnavailableError,
  JsonBucket,
  PartitionedLog,
  decodeJson,
  type LogMessage,
  type NatsHandles,
  type PartitionSession,
} from '@backchannel/messaging';
import { Metrics, type Logger } from '@backchannel/observability';
import { SequencerService } from './sequencer.service.js';

export const SERVICE_CONTEXT = Symbol('SERVICE_CONTEXT');

/** The role whose replicas share the work log's partitions (leases, checkpoints, metrics). */
const ROLE = 'sequencer';
/** How often outstanding items due for a look-up are looked up in the work log. */
const VERIFY_ROUND_MS = 1_000;

/** JetStream adapter: the work log's partitions this replica holds, each applied in stream order per conversation. */
@Injectable()
export class WorkLogConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log: PartitionedLog;
  private started = false;
  private verifyTimer?: NodeJS.Timeout;
  private verifying = false;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(SERVICE_CONTEXT) context: ServiceContext,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly sequencer: SequencerService,
    readiness: Readiness,
    metrics: Metrics,
    config: MeshConfig,
  ) {
    this.log = new PartitionedLog(nats.js, nats.jsm, {
      role: ROLE,
      stream: WORK_STREAM.name,
      partitions: config.SEQUENCER_PARTITIONS,
      filterFor: workPartitionFilter,
      keyOf: conversationOfPartitionedSubject,
      bucket: new JsonBucket(context.buckets.get(LEASES_BUCKET.bucket)!),
      handle: (message, partition, session) => this.handle(message, partition, session),
      onAcquired: (partition, session) => this.adopt(partition, session),
      onLost: (partition) => this.sequencer.forgetPartition(partition),
      beforeCheckpoint: (partition, candidate, final) => this.sequencer.flush(partition, candidate, final),
      onError: (error, partition) => this.onError(error, partition),
    });
    metrics.partitionBacklog(ROLE, () => this.log.backlog());
    readiness.addCheck('consumers', () => this.started);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.log.start();
    this.started = true;
    this.verifyTimer = setInterval(() => void this.verify(), VERIFY_ROUND_MS);
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.verifyTimer);
    await this.log.stop();
    this.sequencer.deadlines.clearAll();
  }

  /** Decodes and applies; an undecodable event is logged and passed over (retrying cannot fix it). */
  private async handle(message: LogMessage, partition: number, session: PartitionSession): Promise<void> {
    let event: WorkLogEvent;
    try {
      event = decodeJson<WorkLogEvent>(message.data);
    } catch {
      this.logger.error(
        { subject: message.subject, seq: message.seq, partition },
        'undecodable work log event skipped',
      );
      return;
    }
    await this.sequencer.apply(partition, event, message.seq, session.id);
  }

  /**
   * A partition just taken over: every unfinished conversation is taken over in the
   * background (queued with its events), which arms the deadlines of its outstanding items.
   */
  private async adopt(partition: number, session: PartitionSession): Promise<void> {
    for (const snapshot of await this.sequencer.snapshotsOf(partition)) {
      const conversationId = snapshot.value.conversationId;
      session
        .exclusive(conversationId, () => this.sequencer.adopt(partition, snapshot, session.id))
        .catch((error: unknown) => this.onError(error, partition));
    }
  }

  /**
   * One round of looking outstanding items up in the work log: an end found there that
   * the state never saw, at a place the partition's run has already passed, is applied in
   * the conversation's queue (a delivery the broker skipped; docs/reliability.md).
   */
  private async verify(): Promise<void> {
    if (this.verifying) return;
    this.verifying = true;
    try {
      for (const due of this.sequencer.dueVerifications(Date.now())) {
        const end = await this.sequencer.findEnd(due.conversationId, due.workItemId);
        if (!end) continue;
        await this.log.exclusive(due.partition, due.conversationId, async (session, applied) => {
          await this.sequencer.repairMissedEnd(due.partition, end, session.id, applied);
        });
      }
    } catch (error) {
      this.onError(error);
    } finally {
      this.verifying = false;
    }
  }

  private onError(error: unknown, partition?: number): void {
    if (error instanceof BrokerUnavailableError) this.logger.debug({ err: error, partition }, 'broker unavailable');
    else if ((error as Error)?.message !== 'partition run stopped')
      this.logger.warn({ err: error, partition }, 'sequencer partition error');
  }
}
