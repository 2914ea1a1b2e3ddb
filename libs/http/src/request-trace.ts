import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Span } from '@opentelemetry/api';
import { parseTraceparent, traceFrom, type Logger, type TraceContext, type Tracing } from '@backchannel/observability';

interface RequestLike {
  raw?: IncomingMessage;
  headers: Record<string, string | string[] | undefined>;
}

const traces = new WeakMap<object, TraceContext>();
const spans = new WeakMap<object, Span>();

/** Routes probed every few seconds: their lines are `debug`, so `info` stays readable. */
const PROBE_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The trace of the request being handled: its own `traceparent` when it carried a valid
 * one (W3C), else a new trace made when it arrived. The same for every reader.
 */
export function requestTrace(request: RequestLike): TraceContext {
  const key = request.raw ?? request;
  return traces.get(key) ?? traceFrom(request.headers['traceparent']);
}

/** The trace id of the request being handled (see `requestTrace`). */
export function requestTraceId(request: RequestLike): string {
  return requestTrace(request).traceId;
}

/**
 * Each request's trace and one log line per request.
 *
 * - `onRequest` settles the request's trace (`traceFrom(traceparent)`) and writes it back
 *   as the request's `traceparent` header, so code that parses the header itself (e.g.
 *   `traceFrom(headers.traceparent)` in a controller) gets the same trace, not a new one
 *   per call, and `requestTraceId(request)` answers it anywhere the request is at hand.
 *   A line a handler writes about the request names it (`{ trace_id }`): there is no
 *   implicit async context (libs/observability/src/logger.ts says why).
 * - `onResponse` logs `{trace_id, request_id, method, route, status, duration_ms}`. Never
 *   headers, bodies or the raw URL: the route template is enough and holds no secret.
 *   Health probes and scrapes at `debug`, 5xx at `warn`, everything else at `info`.
 *
 * Registered before every other hook, so even a request refused in `onRequest` (internal
 * auth) is answered and logged with its trace.
 */
export function traceRequests(fastify: FastifyInstance, logger: Logger, tracing: Tracing): void {
  fastify.addHook('onRequest', (request, _reply, done) => {
    const given = parseTraceparent(request.headers['traceparent']);
    const trace = given ?? traceFrom(undefined);
    if (tracing.enabled) {
      // The server span continues the caller's span when it sent one, else starts the trace.
      const span = tracing.startSpan(`${request.method} ${request.routeOptions.url ?? 'unmatched'}`, 'server', {
        traceId: trace.traceId,
        ...(given ? { parentSpanId: given.spanId } : {}),
      });
      if (span) spans.set(request.raw, span);
    }
    request.headers['traceparent'] = `00-${trace.traceId}-${trace.spanId}-${trace.sampled ? '01' : '00'}`;
    traces.set(request.raw, trace);
    done();
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const line = {
      trace_id: requestTraceId(request),
      request_id: request.id,
      method: request.method,
      route,
      status,
      duration_ms: Math.round(reply.elapsedTime * 10) / 10,
    };
    const span = spans.get(request.raw);
    if (span) {
      span.setAttribute('http.response.status_code', status);
      span.setAttribute('http.route', route);
      span.end();
    }
    if (PROBE_ROUTES.has(route)) logger.debug(line, 'http request');
    else if (status >= 500) logger.warn(line, 'http request');
    else logger.info(line, 'http request');
    done();
  });
}
