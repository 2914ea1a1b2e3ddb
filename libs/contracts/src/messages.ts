/**
 * Payloads carried on the mesh's streams and subjects. JSON, snake_case like the
 * external contract, so a message read off a stream looks like the API it serves.
 */
import type { ErrorObject } from './errors.js';

export type WorkItemKind = 'tool' | 'llm';
export type Delivery = 'when_idle' | 'interrupt' | 'silent';
export type WorkItemState = 'pending' | 'completed' | 'failed' | 'timed_out' | 'cancelled';
export type CancelReason = 'cancelled' | 'timed_out' | 'conversation_ended';

export const WORK_ITEM_KINDS: readonly WorkItemKind[] = ['tool', 'llm'];
export const DELIVERIES: readonly Delivery[] = ['when_idle', 'interrupt', 'silent'];

/** First message on a conversation's log subject. */
export interface ConversationOpenedEvent {
  type: 'conversation.opened';
  conversation_id: string;
  tenant_id: string;
  metadata?: Record<string, unknown>;
  at: string;
}

/** A registration on the conversation's log subject; its `sequence` is the count of registrations. */
export interface WorkItemRegisteredEvent {
  type: 'work_item.registered';
  conversation_id: string;
  tenant_id: string;
  work_item_id: string;
  sequence: number;
  kind: WorkItemKind;
  name?: string;
  turn_id?: string;
  ordered: boolean;
  delivery: Delivery;
  timeout_ms: number;
  expires_at: string;
  at: string;
}

/** Last message on a conversation's log subject. */
export interface ConversationEndedEvent {
  type: 'conversation.ended';
  conversation_id: string;
  tenant_id: string;
  reason?: string;
  /** Work items still outstanding when the conversation ended (the end reply's count). */
  cancelled_work_items?: number;
  at: string;
}

export type ConversationLogEvent = ConversationOpenedEvent | WorkItemRegisteredEvent | ConversationEndedEvent;

/** How a work item ended; the first one durably written on its end subject wins (CONTRACT.md §2). */
export type WorkItemOutcome =
  | { state: 'completed'; result?: unknown; message?: { content: string } }
  | { state: 'failed'; errors: ErrorObject[]; by: 'callback' | 'dispatch' }
  | { state: 'timed_out' }
  | { state: 'cancelled'; reason: 'cancelled' | 'conversation_ended' };

/** The single end of a work item. */
export interface WorkItemEndedEvent {
  type: 'work_item.ended';
  conversation_id: string;
  work_item_id: string;
  outcome: WorkItemOutcome;
  /** Hash of the canonical callback body (RFC 8785), for telling a replay from a conflict. */
  body_hash?: string;
  trace_id: string;
  at: string;
}

/** An accepted progress update (CONTRACT.md §3). `index` counts accepted updates, 1..10. */
export interface WorkItemProgressEvent {
  type: 'work_item.progress';
  conversation_id: string;
  work_item_id: string;
  index: number;
  progress_id?: string;
  progress: { message: string; percent?: number };
  trace_id: string;
  at: string;
}

export type WorkLogEvent = ConversationLogEvent | WorkItemEndedEvent | WorkItemProgressEvent;

/** Where an injected message came from (CONTRACT.md §4). */
export interface MessageSource {
  type: 'callback' | 'progress' | 'timeout' | 'dispatch' | 'api';
  work_item_id?: string;
  sequence?: number;
}

/** The body of an injected message, without its place in the transcript. */
export interface MessageBody {
  role: 'tool' | 'assistant' | 'system' | 'user';
  source: MessageSource;
  result?: unknown;
  content?: string;
  errors?: ErrorObject[];
  progress?: { id?: string; message: string; percent?: number };
  delivery: Delivery;
  trace_id: string;
}

/** What the sequencer releases, in order, per conversation: `release_index` is 1, 2, 3… */
export interface ReleaseMessage extends MessageBody {
  conversation_id: string;
  release_index: number;
  /** When the result was accepted, for the end-to-end latency histogram. */
  accepted_at: string;
}

/** An injected message as the contract shows it (CONTRACT.md §4). */
export interface InjectedMessage extends MessageBody {
  position: number;
  conversation_id: string;
  injected_at: string;
}

/**
 * A transcript entry as stored: the injected message plus the highest release index
 * applied so far in this conversation, carried forward by every append, so one read of
 * the last entry tells a redelivered release from a new one.
 */
export interface TranscriptRecord extends InjectedMessage {
  applied_release_index: number;
  /** Set on messages added through the tenant API with an `Idempotency-Key` (its hash). */
  idempotency_key_hash?: string;
}
