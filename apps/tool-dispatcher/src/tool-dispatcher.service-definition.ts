import type { ServiceDefinition } from '@backchannel/http';
import { ToolDispatcherModule } from './tool-dispatcher.module.js';

export const TOOL_DISPATCHER: ServiceDefinition = {
  name: 'tool-dispatcher',
  module: (context) => ToolDispatcherModule.register(context),
  // Tool arguments ride in the invocation; NATS carries at most 1 MiB by default too.
  bodyLimit: () => 1024 * 1024,
};
