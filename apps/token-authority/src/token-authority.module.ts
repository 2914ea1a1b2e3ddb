import { Module, type DynamicModule } from '@nestjs/common';
import { API_KEYS_BUCKET, IDEMPOTENCY_BUCKET, WORK_ITEMS_BUCKET } from '@backchannel/contracts';
import type { ServiceContext } from '@backchannel/http';
import { JsonBucket, WorkItemRecords, WorkLedger } from '@backchannel/messaging';
import { ApiKeysController } from './api-keys/api-keys.controller.js';
import { ApiKeysService } from './api-keys/api-keys.service.js';
import { Clock } from '@backchannel/config';
import { ConversationsController } from './conversations/conversations.controller.js';
import { ConversationsService } from './conversations/conversations.service.js';
import { TokenAuthorityHandlers } from './token-authority.handlers.js';
import { CallbackUrls } from './work-items/callback-urls.js';
import { IdempotencyRecords } from './work-items/work-item.store.js';
import { WorkItemEnds } from './work-items/work-item-ends.js';
import { WorkItemsController } from './work-items/work-items.controller.js';
import { WorkItemsService } from './work-items/work-items.service.js';

@Module({})
export class TokenAuthorityModule {
  /** The composition root: stores built from the broker handles, services from the stores. */
  static register(context: ServiceContext, clock: Clock = new Clock()): DynamicModule {
    const bucket = (name: string) => new JsonBucket<never>(context.buckets.get(name)!);
    const ledger = new WorkLedger(context.nats.js, context.nats.reads, context.config.SEQUENCER_PARTITIONS);
    return {
      module: TokenAuthorityModule,
      controllers: [ConversationsController, WorkItemsController, ApiKeysController],
      providers: [
        { provide: Clock, useValue: clock },
        { provide: WorkLedger, useValue: ledger },
        { provide: WorkItemRecords, useValue: new WorkItemRecords(context.buckets.get(WORK_ITEMS_BUCKET.bucket)!) },
        { provide: IdempotencyRecords, useValue: new IdempotencyRecords(bucket(IDEMPOTENCY_BUCKET.bucket)) },
        {
          provide: ApiKeysService,
          useFactory: (c: Clock) => new ApiKeysService(bucket(API_KEYS_BUCKET.bucket), c),
          inject: [Clock],
        },
        CallbackUrls,
        WorkItemEnds,
        ConversationsService,
        WorkItemsService,
        TokenAuthorityHandlers,
      ],
    };
  }
}
