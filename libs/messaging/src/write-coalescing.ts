import type { NatsConnection } from '@nats-io/nats-core';

/** The two methods of nats-core's protocol handler (3.x) this module wraps. */
interface ProtocolHandler {
  flushPending(): void;
  close(error?: Error): Promise<void>;
}

/**
 * Makes the client write to its socket once per event-loop turn instead of once per
 * publish.
 *
 * nats-core queues a flush of its outbound buffer as a microtask after the first command
 * of a batch, so each HTTP request the ingress handles (each arriving in its own I/O
 * callback) ends in a socket write of its own: in a profile of the ingress at saturation
 * those writes were a quarter of its CPU, and the broker spent as much again reading them
 * one by one. Deferring the flush to `setImmediate` (the check phase, right after libuv
 * has run every I/O callback that was ready) sends everything the turn published in one
 * write: the same bytes, in the same order, a few microseconds later.
 *
 * The client's own explicit flushes (`flush()`'s PING, reconnects) take the same path,
 * so nothing overtakes anything; only `close()` writes at once, so that what was
 * published before it is not dropped with the socket.
 *
 * This reaches into nats-core's protocol handler (`nc.protocol`, not part of its typed
 * API). If a release renames it, `coalesceWrites` returns false and the client keeps
 * its own behaviour: slower, never wrong.
 */
export function coalesceWrites(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolHandler> }).protocol;
  if (typeof protocol?.flushPending !== 'function' || typeof protocol.close !== 'function') return false;
  const flushNow = protocol.flushPending.bind(protocol);
  const close = protocol.close.bind(protocol);
  let scheduled = false;
  const flushScheduled = (): void => {
    scheduled = false;
    flushNow();
  };
  protocol.flushPending = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushScheduled);
  };
  protocol.close = (error?: Error) => {
    flushNow();
    return close(error);
  };
  return true;
}
