import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The trace a piece of work belongs to, carried implicitly through async calls: an HTTP
 * request (libs/http sets it from `traceparent`) or a message a consumer handles (set
 * from the payload's `trace_id`). The logger adds it to every line written meanwhile.
 */
const current = new AsyncLocalStorage<{ traceId: string }>();

const TRACE_ID = /^[0-9a-f]{32}$/;

/** Runs `fn` with `traceId` as the current trace (ignored when it is not 32 lowercase hex). */
export function withTraceId<T>(traceId: string | undefined, fn: () => T): T {
  if (traceId === undefined || !TRACE_ID.test(traceId)) return fn();
  return current.run({ traceId }, fn);
}

/** The current trace id, if the running code belongs to a request or message that has one. */
export function currentTraceId(): string | undefined {
  return current.getStore()?.traceId;
}

/** The storage itself, for libs/http's request hooks (which must bind Fastify's callbacks). */
export const traceStorage = current;
