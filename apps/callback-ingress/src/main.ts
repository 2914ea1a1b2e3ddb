import 'reflect-metadata';
import { runService } from '@backchannel/http';
import { CALLBACK_INGRESS } from './callback-ingress.service-definition.js';

void runService(CALLBACK_INGRESS);
