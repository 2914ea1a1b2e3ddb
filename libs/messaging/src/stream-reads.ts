import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { BrokerUnavailableError } from './errors.js';

/** One message by sequence, the last on a subject, or the next on a subject from a sequence. */
export type MessageQuery = { seq: number } | { last_by_subj: string } | { seq: number; next_by_subj: string };

/**
 * Reads single messages from a stream. A direct get on a replicated stream may be answered
 * by a follower that has not got the latest write yet, and the mesh decides what to write
 * from what it reads (the conversation log before a registration, a transcript's tail, a
 * work item's end): with replicas, reads go to the stream's leader (STREAM.MSG.GET), which
 * has every acknowledged write. On one server a direct get is as good and cheaper.
 */
export class StreamReads {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly fromLeader: boolean,
  ) {}

  /** The message, or null when there is none; broker trouble is `BrokerUnavailableError`. */
  async get(stream: string, query: MessageQuery): Promise<StoredMsg | null> {
    try {
      return this.fromLeader
        ? await this.jsm.streams.getMessage(stream, query)
        : await this.jsm.direct.getMessage(stream, query);
    } catch (error) {
      if (isMessageNotFound(error)) return null;
      throw new BrokerUnavailableError(error);
    }
  }
}

/** "No message found", however the client and server put it. */
export function isMessageNotFound(error: unknown): boolean {
  const code = (error as { code?: number }).code;
  return (
    code === 404 || code === 10037 || /no message found|message not found/i.test(String((error as Error)?.message))
  );
}
