import { Inject, Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import { WORK_ITEM_END_WILDCARD, WORK_STREAM, type WorkLogEvent } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import { LOGGER, NATS_HANDLES, Readiness } from '@backchannel/http';
import { decodeJson, type NatsHandles } from '@backchannel/messaging';
import type { Logger } from '@backchannel/observability';
import { CancelNoticesService } from './cancel-notices.service.js';
import { PendingDispatches } from './pending-dispatches.js';

const SWEEP_EVERY_MS = 60_000;

/**
 * JetStream adapter: follows every work item end (one filter subject, as nats-server 2.9
 * allows) with an ordered consumer that starts at new messages. Ephemeral on purpose:
 * what it serves is this replica's memory, which a restart loses anyway. Started before
 * the API is served, so no end of an item dispatched here can slip past it.
 */
@Injectable()
export class WorkItemEndsConsumer implements OnModuleInit, BeforeApplicationShutdown {
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private sweeper?: NodeJS.Timeout;
  private readonly notices = new Set<Promise<void>>();

  constructor(
    @Inject(NATS_HANDLES) private readonly nats: NatsHandles,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly cancelNotices: CancelNoticesService,
    private readonly pending: PendingDispatches,
    private readonly clock: Clock,
    readiness: Readiness,
  ) {
    readiness.addCheck('work_item_ends_followed', () => this.messages !== undefined);
  }

  async onModuleInit(): Promise<void> {
    const consumer = await this.nats.js.consumers.get(WORK_STREAM.name, {
      filter_subjects: WORK_ITEM_END_WILDCARD,
      deliver_policy: DeliverPolicy.New,
    });
    this.messages = await consumer.consume();
    this.loop = this.follow(this.messages);
    this.sweeper = setInterval(() => this.pending.sweep(this.clock.now()), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.messages?.close().catch(() => undefined);
    await this.loop;
    await Promise.allSettled([...this.notices]);
  }

  private async follow(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const message of messages) this.handle(message.data);
    } catch (error) {
      this.logger.warn({ err: error }, 'following work item ends stopped');
    }
  }

  /** Decode and hand over; the notice runs on its own so one slow provider holds up no other. */
  private handle(data: Uint8Array): void {
    let event: WorkLogEvent;
    try {
      event = decodeJson<WorkLogEvent>(data);
    } catch {
      return;
    }
    if (event.type !== 'work_item.ended') return;
    const notice = this.cancelNotices.onEnd(event).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'handling a work item end failed');
    });
    this.notices.add(notice);
    void notice.finally(() => this.notices.delete(notice));
  }
}
