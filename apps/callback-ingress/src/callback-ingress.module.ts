import { Module, type DynamicModule } from '@nestjs/common';
import { WORK_ITEMS_BUCKET } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import type { ServiceContext } from '@backchannel/http';
import { JsonBucket, WorkItemRecords, WorkLedger } from '@backchannel/messaging';
import { CallbacksController } from './callbacks/callbacks.controller.js';
import { CallbacksService } from './callbacks/callbacks.service.js';

@Module({})
export class CallbackIngressModule {
  static register(context: ServiceContext, clock: Clock = new Clock()): DynamicModule {
    return {
      module: CallbackIngressModule,
      controllers: [CallbacksController],
      providers: [
        { provide: Clock, useValue: clock },
        {
          provide: WorkLedger,
          useValue: new WorkLedger(context.nats.js, context.nats.jsm, context.config.SEQUENCER_PARTITIONS),
        },
        {
          provide: WorkItemRecords,
          useValue: new WorkItemRecords(new JsonBucket(context.buckets.get(WORK_ITEMS_BUCKET.bucket)!)),
        },
        CallbacksService,
      ],
    };
  }
}
