import { WORK_STREAM, sequencerConsumerName } from '@backchannel/contracts';
import type { ServiceDefinition } from '@backchannel/http';
import { OrderingSequencerModule } from './ordering-sequencer.module.js';

export const ORDERING_SEQUENCER: ServiceDefinition = {
  name: 'ordering-sequencer',
  module: (context) => OrderingSequencerModule.register(context),
  durableConsumers: (config) => ({
    stream: WORK_STREAM.name,
    names: Array.from({ length: config.SEQUENCER_PARTITIONS }, (_, partition) => sequencerConsumerName(partition)),
  }),
};
