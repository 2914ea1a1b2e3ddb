import { Module, type DynamicModule } from '@nestjs/common';
import { SEQUENCER_STATE_BUCKET } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import type { ServiceContext } from '@backchannel/http';
import { JsonBucket, ReleaseLog, WorkLedger } from '@backchannel/messaging';
import { SequencerService } from './ordering/sequencer.service.js';
import { SequencerStateStore } from './ordering/sequencer-state.store.js';
import { SERVICE_CONTEXT, WorkLogConsumer } from './ordering/work-log.consumer.js';

@Module({})
export class OrderingSequencerModule {
  static register(context: ServiceContext, clock: Clock = new Clock()): DynamicModule {
    return {
      module: OrderingSequencerModule,
      providers: [
        { provide: Clock, useValue: clock },
        { provide: SERVICE_CONTEXT, useValue: context },
        {
          provide: WorkLedger,
          useValue: new WorkLedger(context.nats.js, context.nats.reads, context.config.SEQUENCER_PARTITIONS),
        },
        { provide: ReleaseLog, useValue: new ReleaseLog(context.nats.js, context.nats.reads) },
        {
          provide: SequencerStateStore,
          useValue: new SequencerStateStore(new JsonBucket(context.buckets.get(SEQUENCER_STATE_BUCKET.bucket)!)),
        },
        SequencerService,
        WorkLogConsumer,
      ],
    };
  }
}
