import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { API_QUEUE_GROUP, envelopeOf, type ApiSubject } from '@backchannel/contracts';
import { encodeJson, parseRequestJson } from './json.js';
import { toApiError, type RpcLogger } from './rpc-server.js';

/** The headers of a request, read-only; names are case-sensitive as NATS sends them. */
export interface RpcHeaders {
  get(name: string): string | undefined;
}

/** A request–reply handler that also sees the request's headers (e.g. `traceparent`). */
export type HeaderRpcHandler = (body: unknown, headers: RpcHeaders) => Promise<unknown>;

const NO_HEADERS: RpcHeaders = { get: () => undefined };

/**
 * RpcServer for handlers that need the request's NATS headers: the tool dispatcher
 * honours a `traceparent` header on `bc.v1.tools.invoke` (CONTRACT.md §6). Same reply
 * shape, queue group, one-handler-per-subject rule and graceful stop as RpcServer.
 */
export class HeaderRpcServer {
  private readonly handlers = new Map<ApiSubject, HeaderRpcHandler>();
  private readonly subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: RpcLogger,
  ) {}

  handle(subject: ApiSubject, handler: HeaderRpcHandler): void {
    if (this.handlers.has(subject)) throw new Error(`two handlers for ${subject}`);
    this.handlers.set(subject, handler);
  }

  start(): void {
    for (const [subject, handler] of this.handlers) {
      const subscription = this.nc.subscribe(subject, {
        queue: API_QUEUE_GROUP,
        callback: (error, msg) => {
          if (error) return;
          const work = this.serve(msg, handler);
          this.inFlight.add(work);
          void work.finally(() => this.inFlight.delete(work));
        },
      });
      this.subscriptions.push(subscription);
    }
  }

  /** Stops taking requests and waits for those in flight (graceful shutdown). */
  async stop(): Promise<void> {
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    await Promise.allSettled([...this.inFlight]);
  }

  private async serve(msg: Msg, handler: HeaderRpcHandler): Promise<void> {
    let reply: unknown;
    try {
      reply = await handler(parseRequestJson(msg.data), headersOf(msg));
    } catch (error) {
      reply = envelopeOf(toApiError(error, this.logger, msg.subject));
    }
    if (msg.reply) msg.respond(encodeJson(reply));
  }
}

function headersOf(msg: Msg): RpcHeaders {
  const headers = msg.headers;
  if (!headers) return NO_HEADERS;
  return { get: (name) => (headers.has(name) ? headers.get(name) : undefined) };
}
