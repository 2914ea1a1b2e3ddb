import type { ServiceDefinition } from '@backchannel/http';
import { ConversationInjectorModule } from './conversation-injector.module.js';
import { configureInjectorHttp } from './injector-http.js';

/** 20 messages of 32,768 characters, each up to 4 bytes in UTF-8 and escaped in JSON, fit. */
const ADD_MESSAGES_BODY_LIMIT = 4 * 1024 * 1024;

export const CONVERSATION_INJECTOR: ServiceDefinition = {
  name: 'conversation-injector',
  module: (context) => ConversationInjectorModule.register(context),
  bodyLimit: () => ADD_MESSAGES_BODY_LIMIT,
  configureHttp: configureInjectorHttp,
};
