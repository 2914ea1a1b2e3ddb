import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import {
  RELEASE_STREAM,
  injectorConsumerName,
  releasePartitionFilter,
  type ReleaseMessage,
} from '@backchannel/contracts';
import { MeshConfig } from '@backchannel/config';
import { LOGGER, NATS_HANDLES, Readiness } from '@backchannel/http';
import {
  JsonBucket,
  PartitionedConsumers,
  decodeJson,
  type Disposition,
  type Lease,
  type NatsHandles,
} from '@backchannel/messaging';
import type { Logger } from '@backchannel/observability';
import { LEASES } from '../injector.options.js';
import { releaseProblem } from './release-message.js';
import { ReleasesService } from './releases.service.js';

/** A release that came before an earlier one was injected is offered again after this. */
const GAP_RETRY_MS = 500;

/**
 * The JetStream adapter for releases: one durable consumer per partition (BC_RELEASES),
 * run by whichever injector replica holds the partition's lease, one message at a time in
 * stream order. It decodes, calls the service, and turns the outcome into ack / nak / term.
 */
@Injectable()
export class ReleaseConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly consumers: PartitionedConsumers;
  private started = false;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(LEASES) leases: JsonBucket<Lease | { at: number }>,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly releases: ReleasesService,
    readiness: Readiness,
    config: MeshConfig,
  ) {
    this.consumers = new PartitionedConsumers(nats.js, nats.jsm, {
      role: 'injector',
      stream: RELEASE_STREAM.name,
      partitions: config.SEQUENCER_PARTITIONS,
      filterFor: releasePartitionFilter,
      durableFor: injectorConsumerName,
      leases,
      handle: (message) => this.handle(message),
      onError: (error, partition) => this.logger.warn({ err: error, partition }, 'release consumer error'),
    });
    readiness.addCheck('release_consumers', () => this.started);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.consumers.start();
    this.started = true;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.started = false;
    await this.consumers.stop();
  }

  private async handle(message: JsMsg): Promise<Disposition> {
    let release: unknown;
    try {
      release = decodeJson<unknown>(message.data);
    } catch {
      release = undefined;
    }
    const problem = releaseProblem(release);
    if (problem) {
      this.logger.error({ subject: message.subject, seq: message.seq, problem }, 'malformed release dropped');
      return { type: 'term', reason: problem };
    }
    const decision = await this.releases.inject(release as ReleaseMessage);
    return decision === 'gap' ? { type: 'nak', delayMs: GAP_RETRY_MS } : { type: 'ack' };
  }
}
