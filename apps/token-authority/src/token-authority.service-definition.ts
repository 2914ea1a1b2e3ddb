import type { ServiceDefinition } from '@backchannel/http';
import { TokenAuthorityModule } from './token-authority.module.js';

export const TOKEN_AUTHORITY: ServiceDefinition = {
  name: 'token-authority',
  module: (context) => TokenAuthorityModule.register(context),
  bodyLimit: () => 64 * 1024,
};
