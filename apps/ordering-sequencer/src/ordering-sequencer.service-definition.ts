import type { ServiceDefinition } from '@backchannel/http';
import { OrderingSequencerModule } from './ordering-sequencer.module.js';

export const ORDERING_SEQUENCER: ServiceDefinition = {
  name: 'ordering-sequencer',
  module: (context) => OrderingSequencerModule.register(context),
};
