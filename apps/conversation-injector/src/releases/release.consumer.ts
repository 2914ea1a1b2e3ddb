import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import {
  RELEASE_STREAM,
  conversationOfPartitionedSubject,
  releasePartitionFilter,
  type ReleaseMessage,
} from '@backchannel/contracts';
import { MeshConfig } from '@backchannel/config';
import { LOGGER, NATS_HANDLES, Readiness } from '@backchannel/http';
import {
  BrokerUnavailableError,
  JsonBucket,
  PartitionedLog,
  decodeJson,
  type LeaseBucketValue,
  type LogMessage,
  type NatsHandles,
} from '@backchannel/messaging';
import { Metrics, type Logger } from '@backchannel/observability';
import { LEASES } from '../injector.options.js';
import { releaseProblem } from './release-message.js';
import { ReleaseGapError, ReleasesService } from './releases.service.js';

/** The role whose replicas share the release stream's partitions (leases, checkpoints, metrics). */
const ROLE = 'injector';

/**
 * The JetStream adapter for releases: the partitions of BC_RELEASES this replica holds,
 * each read in stream order by an ordered consumer, one conversation's releases one at a
 * time and different conversations side by side. It decodes, checks and calls the service.
 */
@Injectable()
export class ReleaseConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log: PartitionedLog;
  private started = false;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(LEASES) leases: JsonBucket<LeaseBucketValue>,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly releases: ReleasesService,
    readiness: Readiness,
    metrics: Metrics,
    config: MeshConfig,
  ) {
    this.log = new PartitionedLog(nats.js, nats.jsm, {
      role: ROLE,
      stream: RELEASE_STREAM.name,
      partitions: config.SEQUENCER_PARTITIONS,
      filterFor: releasePartitionFilter,
      keyOf: conversationOfPartitionedSubject,
      bucket: leases,
      handle: (message) => this.handle(message),
      onError: (error, partition) => this.onError(error, partition),
    });
    metrics.partitionBacklog(ROLE, () => this.log.backlog());
    readiness.addCheck('release_consumers', () => this.started);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.log.start();
    this.started = true;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.started = false;
    await this.log.stop();
  }

  private async handle(message: LogMessage): Promise<void> {
    let release: unknown;
    try {
      release = decodeJson<unknown>(message.data);
    } catch {
      release = undefined;
    }
    const problem = releaseProblem(release);
    if (problem) {
      // A poison message: retrying cannot fix it.
      this.logger.error({ subject: message.subject, seq: message.seq, problem }, 'malformed release dropped');
      return;
    }
    await this.releases.inject(release as ReleaseMessage);
  }

  private onError(error: unknown, partition?: number): void {
    if (error instanceof BrokerUnavailableError) this.logger.debug({ err: error, partition }, 'broker unavailable');
    else if (error instanceof ReleaseGapError) this.logger.warn({ partition }, `${error.message}; retrying`);
    else if ((error as Error)?.message !== 'partition run stopped')
      this.logger.warn({ err: error, partition }, 'release partition error');
  }
}
