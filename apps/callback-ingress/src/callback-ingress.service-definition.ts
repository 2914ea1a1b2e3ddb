import type { ServiceDefinition } from '@backchannel/http';
import { CallbackIngressModule } from './callback-ingress.module.js';
import { configureIngressHttp } from './ingress-http.js';

export const CALLBACK_INGRESS: ServiceDefinition = {
  name: 'callback-ingress',
  module: (context) => CallbackIngressModule.register(context),
  bodyLimit: (config) => config.CALLBACK_MAX_BODY_BYTES,
  configureHttp: configureIngressHttp,
};
