import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '@backchannel/contracts';
import { isRouteUnder, securityHeaders, type ServiceContext } from '@backchannel/http';
import { invalidToken } from './callbacks/callbacks.service.js';

const WEBHOOKS_PREFIX = '/api/v1/webhooks/';

/**
 * The public edge's HTTP settings. Only JSON bodies are parsed (anything else is 415,
 * once its size is known to be within the limit); the per-source rate limit runs after
 * parsing so 413/415/400 win over 429, as the precedence of CONTRACT.md §3 requires.
 */
export async function configureIngressHttp(fastify: FastifyInstance, context: ServiceContext): Promise<void> {
  // Only JSON has a parser (libs/http/src/service-runtime.ts); any other media type is
  // still read, within the body limit, before it is refused: an oversized body is 413
  // whatever its type, declared or chunked (413 precedes 415).
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) =>
    done(unsupportedMediaType(), undefined),
  );
  const headers = securityHeaders();
  fastify.addHook('onRequest', (_request, reply, done) => {
    void reply.headers(headers);
    done();
  });
  await fastify.register(rateLimit, {
    global: true,
    hook: 'preHandler',
    max: context.config.INGRESS_RATE_LIMIT_PER_SOURCE,
    timeWindow: 1_000,
    keyGenerator: (request) => request.ip,
    allowList: (request) => !isRouteUnder(request, WEBHOOKS_PREFIX),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: {
      'x-ratelimit-limit': false,
      'x-ratelimit-remaining': false,
      'x-ratelimit-reset': false,
      'retry-after': true,
    },
    errorResponseBuilder: (_request, context) =>
      new ApiError('rate_limited', 'too many callbacks from this source; retry later', {
        headers: { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1_000))) },
      }),
  });
  // A callback path the routes cannot match (an id longer than the router's parameter
  // limit, extra segments, no id) holds a malformed work item id: 401 like a bad token.
  // Registered after the plugins, so their hooks (rate limit, headers) apply to it too.
  for (const url of [WEBHOOKS_PREFIX, `${WEBHOOKS_PREFIX}*`]) fastify.post(url, () => Promise.reject(invalidToken()));
}

function unsupportedMediaType(): ApiError {
  return new ApiError('unsupported_media_type', 'the body must be application/json');
}
