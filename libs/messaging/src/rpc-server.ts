import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { API_QUEUE_GROUP, ApiError, envelopeOf, type ApiSubject } from '@backchannel/contracts';
import { encodeJson, parseRequestJson } from './json.js';
import { BrokerUnavailableError } from './errors.js';

/** A request–reply handler: JSON body in, result object out; throws ApiError for the envelope. */
export type RpcHandler = (body: unknown) => Promise<unknown>;

export interface RpcLogger {
  error(object: Record<string, unknown>, message: string): void;
}

/**
 * Serves `bc.v1.*` request–reply subjects with plain nats.js subscriptions: the reply is
 * the result object or `{"errors":[…]}` (CONTRACT.md §2), which Nest's NATS transport
 * cannot produce. Each subject must have exactly one handler; a second registration
 * refuses to start.
 */
export class RpcServer {
  private readonly handlers = new Map<ApiSubject, RpcHandler>();
  private readonly subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: RpcLogger,
  ) {}

  handle(subject: ApiSubject, handler: RpcHandler): void {
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

  private async serve(msg: Msg, handler: RpcHandler): Promise<void> {
    let reply: unknown;
    try {
      reply = await handler(parseRequestJson(msg.data));
    } catch (error) {
      reply = envelopeOf(toApiError(error, this.logger, msg.subject));
    }
    if (msg.reply) msg.respond(encodeJson(reply));
  }
}

/** Maps any thrown value to the contract's error: known ones keep their code, the rest are 500/503. */
export function toApiError(error: unknown, logger: RpcLogger, where: string): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof BrokerUnavailableError) {
    return new ApiError('unavailable', 'the broker cannot take the request now; retry', {
      headers: { 'retry-after': '1' },
    });
  }
  logger.error({ err: error, where }, 'unexpected error');
  return new ApiError('internal_error', 'an unexpected error occurred');
}
