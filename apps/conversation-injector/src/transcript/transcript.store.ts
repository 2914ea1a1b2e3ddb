import type { JetStreamClient, StoredMsg } from '@nats-io/jetstream';
import { TRANSCRIPT_STREAM, transcriptSubject, type TranscriptRecord } from '@backchannel/contracts';
import {
  BrokerUnavailableError,
  decodeJson,
  encodeJson,
  isWrongLastSequence,
  type MessageQuery,
  type StreamReads,
} from '@backchannel/messaging';

/** A transcript entry as read back: the record and where it sits in the stream. */
export interface TranscriptEntry {
  /** Stream sequence: the compare-and-set handle for the next append on this subject. */
  seq: number;
  record: TranscriptRecord;
  /** The `Nats-Msg-Id` it was appended with, when it had one. */
  msgId?: string;
}

export type TranscriptAppend = { ok: true; seq: number; duplicate: boolean } | { ok: false };

/**
 * The transcript (stream BC_TRANSCRIPT, one subject per conversation) as a repository.
 * Reads are direct gets; an append is one publish expecting the subject's last sequence,
 * so the broker itself serialises every writer (injector replicas, the Add Messages API).
 */
export class TranscriptStore {
  constructor(
    private readonly js: JetStreamClient,
    private readonly reads: StreamReads,
  ) {}

  /** The last entry of a conversation's transcript, or null when it is empty. */
  last(conversationId: string): Promise<TranscriptEntry | null> {
    return this.get({ last_by_subj: transcriptSubject(conversationId) });
  }

  /** The first entry of a conversation at or after stream sequence `fromSeq`. */
  nextFrom(conversationId: string, fromSeq: number): Promise<TranscriptEntry | null> {
    return this.get({ seq: Math.max(1, fromSeq), next_by_subj: transcriptSubject(conversationId) });
  }

  /** The entry at a stream sequence (a deduplicated append's original). */
  at(seq: number): Promise<TranscriptEntry | null> {
    return this.get({ seq });
  }

  /** Appends if the subject's last sequence is still `expectedLastSeq` (0: empty). */
  async append(record: TranscriptRecord, expectedLastSeq: number, msgId: string): Promise<TranscriptAppend> {
    try {
      const ack = await this.js.publish(transcriptSubject(record.conversation_id), encodeJson(record), {
        msgID: msgId,
        expect: { lastSubjectSequence: expectedLastSeq, streamName: TRANSCRIPT_STREAM.name },
      });
      return { ok: true, seq: ack.seq, duplicate: ack.duplicate };
    } catch (error) {
      if (isWrongLastSequence(error)) return { ok: false };
      throw new BrokerUnavailableError(error);
    }
  }

  private async get(query: MessageQuery): Promise<TranscriptEntry | null> {
    const message = await this.reads.get(TRANSCRIPT_STREAM.name, query);
    return message ? toEntry(message) : null;
  }
}

function toEntry(message: StoredMsg): TranscriptEntry {
  const msgId = message.header?.get('Nats-Msg-Id');
  return { seq: message.seq, record: decodeJson<TranscriptRecord>(message.data), ...(msgId ? { msgId } : {}) };
}
