import 'reflect-metadata';
import { runService } from '@backchannel/http';
import { ORDERING_SEQUENCER } from './ordering-sequencer.service-definition.js';

void runService(ORDERING_SEQUENCER);
