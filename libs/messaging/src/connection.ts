import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { StreamReads } from './stream-reads.js';
import { shareRequestCancelError } from './request-cancel.js';
import { coalesceWrites } from './write-coalescing.js';

/** A service's handles on the broker, opened once at boot. */
export interface NatsHandles {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Reads that see every acknowledged write (from the stream leader when streams are replicated). */
  reads: StreamReads;
}

/**
 * Connects with endless reconnects: a broker restart must not kill a service, which
 * answers 503 meanwhile and carries on when the broker is back.
 */
export async function connectNats(
  servers: string,
  name: string,
  credentials: { user?: string; pass?: string } = {},
  /** Streams are replicated (STREAM_REPLICAS > 1): reads go to their leaders. */
  replicated = false,
): Promise<NatsHandles> {
  const nc = await connect({
    servers: servers.split(',').map((server) => server.trim()),
    name,
    ...(credentials.user ? { user: credentials.user, pass: credentials.pass } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    pingInterval: 5_000,
    // An Error (with its stack) per request for nicer async traces cost ~12% of the
    // ingress's CPU per callback (two per publish); broker errors are logged without it.
    noAsyncTraces: true,
  });
  // One socket write per event-loop turn, not one per publish (write-coalescing.ts).
  coalesceWrites(nc);
  // No error and stack built for every answered request (request-cancel.ts).
  shareRequestCancelError();
  // JetStream API calls fail fast while the broker is away; callers map that to 503.
  const js = jetstream(nc, { timeout: 5_000 });
  const jsm = await jetstreamManager(nc, { timeout: 5_000 });
  return { nc, js, jsm, reads: new StreamReads(jsm, replicated) };
}
