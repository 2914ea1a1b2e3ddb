import { Module, type DynamicModule } from '@nestjs/common';
import { API_KEYS_BUCKET, IDEMPOTENCY_BUCKET, LEASES_BUCKET } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import type { ServiceContext } from '@backchannel/http';
import { JsonBucket, ReleaseLog, WorkLedger } from '@backchannel/messaging';
import { ApiKeyStore } from './access/api-key.store.js';
import { TenantAccess } from './access/tenant-access.service.js';
import { EventsController } from './events/events.controller.js';
import { FollowersService } from './events/followers.service.js';
import { InjectorMetrics } from './injector.metrics.js';
import { InjectorSettings, LEASES, type InjectorOptions } from './injector.options.js';
import { LiveFeed, LivePublisher } from './live/live-messages.js';
import { NatsLiveFeed, NatsLivePublisher } from './live/nats-live.js';
import { AddMessagesClaims } from './messages/add-messages-claims.store.js';
import { AddMessagesService } from './messages/add-messages.service.js';
import { MessagesController } from './messages/messages.controller.js';
import { MessagesHandler } from './messages/messages.handler.js';
import { ReleaseConsumer } from './releases/release.consumer.js';
import { ReleasesService } from './releases/releases.service.js';
import { TranscriptReader } from './transcript/transcript-reader.service.js';
import { TranscriptWriter } from './transcript/transcript-writer.service.js';
import { TranscriptStore } from './transcript/transcript.store.js';

@Module({})
export class ConversationInjectorModule {
  /** The composition root: repositories built from the broker handles, services from the repositories. */
  static register(context: ServiceContext, options: InjectorOptions = {}): DynamicModule {
    const { nc, js, reads } = context.nats;
    const bucket = <T>(name: string) => new JsonBucket<T>(context.buckets.get(name)!);
    return {
      module: ConversationInjectorModule,
      controllers: [MessagesController, EventsController],
      providers: [
        { provide: Clock, useValue: options.clock ?? new Clock() },
        { provide: InjectorSettings, useValue: new InjectorSettings(options) },
        { provide: TranscriptStore, useValue: new TranscriptStore(js, reads) },
        { provide: ReleaseLog, useValue: new ReleaseLog(js, reads) },
        { provide: WorkLedger, useValue: new WorkLedger(js, reads, context.config.SEQUENCER_PARTITIONS) },
        { provide: ApiKeyStore, useValue: new ApiKeyStore(bucket(API_KEYS_BUCKET.bucket)) },
        { provide: AddMessagesClaims, useValue: new AddMessagesClaims(bucket(IDEMPOTENCY_BUCKET.bucket)) },
        { provide: LEASES, useValue: bucket(LEASES_BUCKET.bucket) },
        { provide: LivePublisher, useValue: new NatsLivePublisher(nc) },
        { provide: LiveFeed, useValue: new NatsLiveFeed(nc) },
        InjectorMetrics,
        TranscriptWriter,
        TranscriptReader,
        TenantAccess,
        ReleasesService,
        ReleaseConsumer,
        AddMessagesService,
        FollowersService,
        MessagesHandler,
      ],
    };
  }
}
