import type { InjectedMessage } from '@backchannel/contracts';

/** Publishes every injected message live (CONTRACT.md §4: `bc.v1.conversations.{id}.messages`). */
export abstract class LivePublisher {
  abstract publish(message: InjectedMessage): void;
}

/** A live subscription to one conversation's injected messages. */
export interface LiveSubscription {
  unsubscribe(): void;
}

/**
 * Follows one conversation's live subject. `subscribe` resolves once the broker has the
 * subscription, so anything published after that reaches `onMessage`.
 */
export abstract class LiveFeed {
  abstract subscribe(conversationId: string, onMessage: (message: InjectedMessage) => void): Promise<LiveSubscription>;
}
