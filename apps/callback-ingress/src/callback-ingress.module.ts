import {
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { WORK_ITEMS_BUCKET } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import type { ServiceContext } from '@backchannel/http';
import { MirroredWorkItemRecords, WorkItemRecords, WorkLedger } from '@backchannel/messaging';
import { CallbacksController } from './callbacks/callbacks.controller.js';
import { CallbacksService } from './callbacks/callbacks.service.js';

/** Starts and stops the in-memory mirror of work item records with the app. */
class RecordsMirrorLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(private readonly records: MirroredWorkItemRecords) {}

  onApplicationBootstrap(): Promise<void> {
    return this.records.start();
  }

  beforeApplicationShutdown(): void {
    this.records.stop();
  }
}

@Module({})
export class CallbackIngressModule {
  static register(context: ServiceContext, clock: Clock = new Clock()): DynamicModule {
    const records = new MirroredWorkItemRecords(context.buckets.get(WORK_ITEMS_BUCKET.bucket)!, () => clock.now());
    return {
      module: CallbackIngressModule,
      controllers: [CallbacksController],
      providers: [
        { provide: Clock, useValue: clock },
        {
          provide: WorkLedger,
          useValue: new WorkLedger(context.nats.js, context.nats.reads, context.config.SEQUENCER_PARTITIONS),
        },
        { provide: WorkItemRecords, useValue: records },
        { provide: RecordsMirrorLifecycle, useValue: new RecordsMirrorLifecycle(records) },
        CallbacksService,
      ],
    };
  }
}
