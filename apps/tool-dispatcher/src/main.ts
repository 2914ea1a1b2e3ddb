import 'reflect-metadata';
import { runService } from '@backchannel/http';
import { TOOL_DISPATCHER } from './tool-dispatcher.service-definition.js';

void runService(TOOL_DISPATCHER);
