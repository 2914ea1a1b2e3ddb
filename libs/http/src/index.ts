export {
  startService,
  runService,
  type RunningService,
  type ServiceContext,
  type ServiceDefinition,
  type StartOptions,
  type StopOptions,
  SHUTDOWN_READINESS_DELAY_MS,
} from './service-runtime.js';
export { Readiness } from './readiness.js';
export { internalAuthCheck } from './internal-auth.js';
export { NestedDto, validateDto } from './validation.js';
export { sendError, toHttpApiError } from './error-rendering.js';
export { LOGGER, NATS_HANDLES } from './tokens.js';
export { requestTrace, requestTraceId } from './request-trace.js';
export { securityHeaders } from './security-headers.js';
export { isRouteUnder } from './route-prefix.js';
