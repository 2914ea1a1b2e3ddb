import 'reflect-metadata';
import { runService } from '@backchannel/http';
import { CONVERSATION_INJECTOR } from './conversation-injector.service-definition.js';

void runService(CONVERSATION_INJECTOR);
