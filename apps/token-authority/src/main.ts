import 'reflect-metadata';
import { runService } from '@backchannel/http';
import { TOKEN_AUTHORITY } from './token-authority.service-definition.js';

void runService(TOKEN_AUTHORITY);
