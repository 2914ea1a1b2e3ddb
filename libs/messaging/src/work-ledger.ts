import type { JetStreamClient, StoredMsg } from '@nats-io/jetstream';
import {
  WORK_STREAM,
  conversationLogSubject,
  conversationWorkFilter,
  partitionOf,
  progressMsgId,
  workItemEndMsgId,
  workItemEndSubject,
  workItemProgressSubject,
  type ConversationLogEvent,
  type WorkItemEndedEvent,
  type WorkItemProgressEvent,
  type WorkLogEvent,
} from '@backchannel/contracts';
import { BrokerUnavailableError, isWrongLastSequence } from './errors.js';
import { decodeJson, encodeJson } from './json.js';
import type { StreamReads } from './stream-reads.js';

/** A message read back from the work log. */
export interface Stored<T> {
  /** Stream sequence: the compare-and-set handle for the next write on its subject. */
  seq: number;
  event: T;
  storedAt: Date;
}

export type AppendResult = { ok: true; seq: number; duplicate: boolean } | { ok: false };

/** How recording a work item's end went: this write won, an identical earlier one had, or another end won. */
export type EndResult =
  | { outcome: 'recorded'; end: Stored<WorkItemEndedEvent> }
  | { outcome: 'duplicate'; end: Stored<WorkItemEndedEvent> }
  | { outcome: 'lost'; end: Stored<WorkItemEndedEvent> };

/**
 * The work log (stream BC_WORK) as a repository. Its writes are compare-and-set on a
 * subject's last sequence, so the broker itself decides races atomically across any
 * number of replicas:
 * - a conversation's log gives gap-free `sequence` numbers and orders open/register/end;
 * - a work item's end subject accepts exactly one end (expected last sequence 0).
 */
export class WorkLedger {
  constructor(
    private readonly js: JetStreamClient,
    private readonly reads: StreamReads,
    readonly partitions: number,
  ) {}

  partitionOf(conversationId: string): number {
    return partitionOf(conversationId, this.partitions);
  }

  /** The last event of a conversation's log, or null for an unknown conversation. */
  async lastConversationEvent(conversationId: string): Promise<Stored<ConversationLogEvent> | null> {
    return this.readLast(conversationLogSubject(this.partitionOf(conversationId), conversationId));
  }

  /** Appends to a conversation's log if its last sequence is still `expectedLastSeq` (0: empty). */
  async appendConversationEvent(
    event: ConversationLogEvent,
    expectedLastSeq: number,
    msgId: string,
  ): Promise<AppendResult> {
    const subject = conversationLogSubject(this.partitionOf(event.conversation_id), event.conversation_id);
    return this.compareAndAppend(subject, event, expectedLastSeq, msgId);
  }

  /** Every event of a conversation's log, oldest first (rare paths: end, recovery). */
  async conversationEvents(conversationId: string): Promise<Stored<ConversationLogEvent>[]> {
    const subject = conversationLogSubject(this.partitionOf(conversationId), conversationId);
    const events: Stored<ConversationLogEvent>[] = [];
    let from = 1;
    for (;;) {
      const next = await this.readNext<ConversationLogEvent>(subject, from);
      if (!next) return events;
      events.push(next);
      from = next.seq + 1;
    }
  }

  /**
   * The first event of a conversation anywhere in the work log (its log, ends, progress)
   * at or after stream sequence `fromSeq`: to catch a conversation's state up in order.
   */
  async nextConversationEvent(conversationId: string, fromSeq: number): Promise<Stored<WorkLogEvent> | null> {
    return this.readNext(conversationWorkFilter(this.partitionOf(conversationId), conversationId), fromSeq);
  }

  /** The first event of a conversation's log: its opening. */
  async firstConversationEvent(conversationId: string): Promise<Stored<ConversationLogEvent> | null> {
    return this.readNext(conversationLogSubject(this.partitionOf(conversationId), conversationId), 1);
  }

  /** Reads one stored message by stream sequence (a deduplicated append's original). */
  async readAt<T>(seq: number): Promise<Stored<T> | null> {
    const message = await this.reads.get(WORK_STREAM.name, { seq });
    return message ? toStored<T>(message) : null;
  }

  /** The end of a work item, or null while it is pending. */
  async readEnd(conversationId: string, workItemId: string): Promise<Stored<WorkItemEndedEvent> | null> {
    return this.readLast(workItemEndSubject(this.partitionOf(conversationId), conversationId, workItemId));
  }

  /**
   * Records a work item's end unless another end is already recorded. The first write
   * wins; every caller learns the winner (CONTRACT.md §2: a work item ends exactly once).
   */
  async recordEnd(event: WorkItemEndedEvent): Promise<EndResult> {
    const subject = workItemEndSubject(
      this.partitionOf(event.conversation_id),
      event.conversation_id,
      event.work_item_id,
    );
    const msgId = workItemEndMsgId(event.work_item_id, event.outcome.state, event.body_hash);
    const appended = await this.compareAndAppend(subject, event, 0, msgId);
    if (appended.ok) {
      const end = { seq: appended.seq, event, storedAt: new Date() };
      if (!appended.duplicate) return { outcome: 'recorded', end };
      const original = await this.readAt<WorkItemEndedEvent>(appended.seq);
      return { outcome: 'duplicate', end: original ?? end };
    }
    const existing = await this.readLast<WorkItemEndedEvent>(subject);
    if (!existing) throw new BrokerUnavailableError(new Error(`end of ${event.work_item_id} vanished`));
    return { outcome: 'lost', end: existing };
  }

  /** The last accepted progress update of a work item, or null. */
  async lastProgress(conversationId: string, workItemId: string): Promise<Stored<WorkItemProgressEvent> | null> {
    return this.readLast(workItemProgressSubject(this.partitionOf(conversationId), conversationId, workItemId));
  }

  /** Every accepted progress update of a work item, oldest first (at most 10). */
  async progressEvents(conversationId: string, workItemId: string): Promise<Stored<WorkItemProgressEvent>[]> {
    const subject = workItemProgressSubject(this.partitionOf(conversationId), conversationId, workItemId);
    const events: Stored<WorkItemProgressEvent>[] = [];
    for (
      let next = await this.readNext<WorkItemProgressEvent>(subject, 1);
      next;
      next = await this.readNext(subject, next.seq + 1)
    ) {
      events.push(next);
    }
    return events;
  }

  /** Appends a progress update if no other was accepted since `expectedLastSeq`. */
  async appendProgress(event: WorkItemProgressEvent, expectedLastSeq: number): Promise<AppendResult> {
    const subject = workItemProgressSubject(
      this.partitionOf(event.conversation_id),
      event.conversation_id,
      event.work_item_id,
    );
    return this.compareAndAppend(subject, event, expectedLastSeq, progressMsgId(event.work_item_id, event.index));
  }

  private async compareAndAppend(
    subject: string,
    event: unknown,
    expectedLastSeq: number,
    msgId: string,
  ): Promise<AppendResult> {
    try {
      const ack = await this.js.publish(subject, encodeJson(event), {
        msgID: msgId,
        expect: { lastSubjectSequence: expectedLastSeq, streamName: WORK_STREAM.name },
      });
      return { ok: true, seq: ack.seq, duplicate: ack.duplicate };
    } catch (error) {
      if (isWrongLastSequence(error)) return { ok: false };
      throw new BrokerUnavailableError(error);
    }
  }

  private async readNext<T>(subject: string, fromSeq: number): Promise<Stored<T> | null> {
    const message = await this.reads.get(WORK_STREAM.name, { seq: fromSeq, next_by_subj: subject });
    return message ? toStored<T>(message) : null;
  }

  private async readLast<T>(subject: string): Promise<Stored<T> | null> {
    const message = await this.reads.get(WORK_STREAM.name, { last_by_subj: subject });
    return message ? toStored<T>(message) : null;
  }
}

function toStored<T>(message: StoredMsg): Stored<T> {
  return { seq: message.seq, event: decodeJson<T>(message.data), storedAt: message.time };
}
