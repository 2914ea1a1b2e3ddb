import type { NatsConnection } from '@nats-io/nats-core';
import { liveMessagesSubject, type InjectedMessage } from '@backchannel/contracts';
import { BrokerUnavailableError, decodeJson, encodeJson } from '@backchannel/messaging';
import { LiveFeed, LivePublisher, type LiveSubscription } from './live-messages.js';

/**
 * Core NATS: at most once per publish, so the transcript stays the source of truth
 * (followers fill gaps from it; the platform catches up with messages.list).
 */
export class NatsLivePublisher extends LivePublisher {
  constructor(private readonly nc: NatsConnection) {
    super();
  }

  publish(message: InjectedMessage): void {
    try {
      this.nc.publish(liveMessagesSubject(message.conversation_id), encodeJson(message));
    } catch {
      // Closed or draining connection: followers and the platform catch up from the transcript.
    }
  }
}

export class NatsLiveFeed extends LiveFeed {
  constructor(private readonly nc: NatsConnection) {
    super();
  }

  async subscribe(conversationId: string, onMessage: (message: InjectedMessage) => void): Promise<LiveSubscription> {
    const subscription = this.nc.subscribe(liveMessagesSubject(conversationId), {
      callback: (error, msg) => {
        if (error) return;
        try {
          onMessage(decodeJson<InjectedMessage>(msg.data));
        } catch {
          // Not a message of ours: ignore it rather than break the follower.
        }
      },
    });
    try {
      await withTimeout(this.nc.flush(), FLUSH_TIMEOUT_MS);
    } catch (error) {
      subscription.unsubscribe();
      throw new BrokerUnavailableError(error);
    }
    return { unsubscribe: () => subscription.unsubscribe() };
  }
}

/** How long to wait for the broker to confirm a subscription before answering 503. */
const FLUSH_TIMEOUT_MS = 5_000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the broker within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
