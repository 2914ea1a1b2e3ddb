import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ApiError, CONTRACT_HEADERS } from '@backchannel/contracts';
import { isRouteUnder, type ServiceContext } from '@backchannel/http';
import { rateLimitKeyOf, retryAfterSeconds } from './access/rate-limit-key.js';
import { TenantAccess } from './access/tenant-access.service.js';

/** Every route of the tenant API (CONTRACT.md §4) lies under this prefix; health and metrics do not. */
const TENANT_API_PREFIX = '/api/v1/conversations/';

/**
 * The tenant API's rate limit: `INJECTOR_RATE_LIMIT_PER_KEY` requests per second per API
 * key, counted by the key id the access check resolves; requests without a valid key count
 * per client address instead (rateLimitKeyOf). It runs as a preHandler, after body parsing,
 * so 413 and 400 for malformed JSON come first, then 429, then the handler's checks (401,
 * 400, 404, 410): the order of CONTRACT.md §3. An SSE stream is one request, so it counts
 * once, when it opens. The counters live in this replica's memory (docs/injector.md).
 */
export async function configureInjectorHttp(
  fastify: FastifyInstance,
  context: ServiceContext,
  app: NestFastifyApplication,
): Promise<void> {
  const access = app.get(TenantAccess);
  await fastify.register(rateLimit, {
    global: true,
    hook: 'preHandler',
    max: context.config.INJECTOR_RATE_LIMIT_PER_KEY,
    timeWindow: 1_000,
    keyGenerator: (request) => rateLimitKeyOf(() => access.authenticate(request.headers.authorization), request.ip),
    allowList: (request) => !isRouteUnder(request, TENANT_API_PREFIX),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: {
      'x-ratelimit-limit': false,
      'x-ratelimit-remaining': false,
      'x-ratelimit-reset': false,
      [CONTRACT_HEADERS.retryAfter]: false,
    },
    errorResponseBuilder: (_request, limit) =>
      new ApiError('rate_limited', 'too many requests; retry after Retry-After seconds', {
        headers: { [CONTRACT_HEADERS.retryAfter]: String(retryAfterSeconds(limit.ttl)) },
      }),
  });
}
