import { Injectable } from '@nestjs/common';
import {
  ApiError,
  MAX_PROGRESS_UPDATES,
  RETRY_AFTER_UNAVAILABLE_S,
  isCallbackToken,
  isWorkItemId,
  secretMatchesHash,
  type WorkItemProgressEvent,
  type WorkItemRecord,
} from '@backchannel/contracts';
import { MeshConfig, crashPoint, type CrashPointName } from '@backchannel/config';
import { Readiness } from '@backchannel/http';
import { WorkItemRecords, WorkLedger, type EndResult, type Stored } from '@backchannel/messaging';
import { newTraceId } from '@backchannel/observability';
import { Clock } from '@backchannel/config';
import { bodyHash } from './body-hash.js';
import { outcomeOfCallback, progressOfBody } from './callback-body.js';
import {
  callbackVerdict,
  conflictAfterConversationEnd,
  progressVerdict,
  type CallbackVerdict,
} from './token-verdict.js';

export interface CallbackAnswer {
  status: 200 | 202;
  body: { status: 'accepted'; work_item_id: string; duplicate?: boolean };
}

/** Enough rounds for ten progress writers racing on one item. */
const MAX_PROGRESS_ATTEMPTS = 20;

/**
 * The callback pipeline (CONTRACT.md §3), as numbered steps, in the contract's order of
 * precedence (413, 415 and malformed JSON are answered by the HTTP layer before step 1):
 * 1. verify the token against the work item's record (401 for every kind of bad token);
 * 2. check the body's shape for the item's kind (400 with a pointer);
 * 3. refuse while shutting down (503), after 401 and the shape 400 as the order wants;
 * 4. record the end on the work item's end subject, first write wins: that write *is*
 *    the redeem, so no crash between "checked" and "stored" can lose a result;
 * 5. answer from whichever end won: 202 new, 200 identical replay, 410 closed, 409 conflict.
 */
@Injectable()
export class CallbacksService {
  private readonly replayTtlMs: number;
  /** Fault-injection tests only (docs/operations.md); undefined in every real deployment. */
  private readonly crashAt: CrashPointName | undefined;

  constructor(
    private readonly records: WorkItemRecords,
    private readonly ledger: WorkLedger,
    private readonly clock: Clock,
    private readonly readiness: Readiness,
    config: MeshConfig,
  ) {
    this.replayTtlMs = config.REPLAY_TTL_MS;
    this.crashAt = config.BACKCHANNEL_CRASH_POINT;
  }

  async accept(workItemId: string, token: unknown, body: unknown, traceId: string): Promise<CallbackAnswer> {
    const record = await this.authenticate(workItemId, token);
    const outcome = outcomeOfCallback(body, record.kind);
    this.requireServing();
    const hash = bodyHash(body);
    crashPoint('ingress.after_token_check', this.crashAt);
    // Past the deadline the item's end is `timed_out`, even when this request is the one
    // that writes it: for the callback that is a lost race (410), never an acceptance.
    const result: EndResult = this.pastDeadline(record)
      ? { outcome: 'lost', end: (await this.recordTimeout(record)).end }
      : await this.ledger.recordEnd({
          type: 'work_item.ended',
          conversation_id: record.conversation_id,
          work_item_id: workItemId,
          outcome,
          body_hash: hash,
          trace_id: traceId,
          at: this.clock.nowIso(),
        });
    crashPoint('ingress.after_durable_write', this.crashAt);
    return this.answer(record, result, hash);
  }

  async progress(workItemId: string, token: unknown, body: unknown, traceId: string): Promise<CallbackAnswer> {
    const record = await this.authenticate(workItemId, token);
    const progress = progressOfBody(body);
    this.requireServing();
    for (let attempt = 0; attempt < MAX_PROGRESS_ATTEMPTS; attempt++) {
      await this.requirePending(record);
      const accepted = await this.acceptedProgress(record);
      if (progress.id !== undefined && accepted.some((stored) => stored.event.progress_id === progress.id)) {
        return { status: 200, body: { status: 'accepted', work_item_id: workItemId, duplicate: true } };
      }
      if (accepted.length >= MAX_PROGRESS_UPDATES) {
        throw new ApiError('progress_limit_reached', `at most ${MAX_PROGRESS_UPDATES} progress updates per work item`);
      }
      const appended = await this.ledger.appendProgress(
        {
          type: 'work_item.progress',
          conversation_id: record.conversation_id,
          work_item_id: workItemId,
          index: accepted.length + 1,
          ...(progress.id !== undefined ? { progress_id: progress.id } : {}),
          progress: {
            message: progress.message,
            ...(progress.percent !== undefined ? { percent: progress.percent } : {}),
          },
          trace_id: traceId,
          at: this.clock.nowIso(),
        },
        accepted.at(-1)?.seq ?? 0,
      );
      if (appended.ok) return { status: 202, body: { status: 'accepted', work_item_id: workItemId } };
    }
    throw new ApiError('unavailable', 'too many concurrent progress updates; retry', {
      headers: { 'retry-after': '1' },
    });
  }

  /**
   * Step 1. Malformed ids and tokens never reach a store (CONTRACT.md §1). While the broker
   * is away a token cannot be checked at all, so that 503 comes first; shutting down is
   * step 3.
   */
  private async authenticate(workItemId: string, token: unknown): Promise<WorkItemRecord> {
    if (!isWorkItemId(workItemId) || !isCallbackToken(token)) throw invalidToken();
    if (!this.readiness.isBrokerConnected) throw unavailable();
    const record = await this.records.get(workItemId);
    if (!record || !secretMatchesHash(token, record.token_hash)) throw invalidToken();
    return record;
  }

  /** Step 3. A valid, well-formed request that cannot be taken now: retrying is safe. */
  private requireServing(): void {
    if (!this.readiness.isBrokerConnected || this.readiness.isStopping) throw unavailable();
  }

  private async answer(record: WorkItemRecord, result: EndResult, hash: string): Promise<CallbackAnswer> {
    const winner = result.end.event;
    const verdict = callbackVerdict({
      write: result.outcome,
      winner,
      bodyHash: hash,
      nowMs: this.clock.now(),
      replayTtlMs: this.replayTtlMs,
    });
    // Only a conflict can turn on the conversation's state: read it on that rare path alone.
    const conversationEnded = verdict.kind === 'conflict' && (await this.conversationEnded(record.conversation_id));
    return answerOf(record.work_item_id, conflictAfterConversationEnd(verdict, winner, conversationEnded));
  }

  private async conversationEnded(conversationId: string): Promise<boolean> {
    const last = await this.ledger.lastConversationEvent(conversationId);
    return last?.event.type === 'conversation.ended';
  }

  private async requirePending(record: WorkItemRecord): Promise<void> {
    const end = this.pastDeadline(record)
      ? (await this.recordTimeout(record)).end
      : await this.ledger.readEnd(record.conversation_id, record.work_item_id);
    const verdict = progressVerdict(end?.event ?? null, this.clock.now(), this.replayTtlMs);
    if (verdict.kind !== 'pending') answerOf(record.work_item_id, verdict);
  }

  private acceptedProgress(record: WorkItemRecord): Promise<Stored<WorkItemProgressEvent>[]> {
    return this.ledger.progressEvents(record.conversation_id, record.work_item_id);
  }

  private pastDeadline(record: WorkItemRecord): boolean {
    return this.clock.now() >= Date.parse(record.expires_at);
  }

  /** Whoever notices a passed deadline first records it; the end is `timed_out` either way. */
  private recordTimeout(record: WorkItemRecord): Promise<EndResult> {
    return this.ledger.recordEnd({
      type: 'work_item.ended',
      conversation_id: record.conversation_id,
      work_item_id: record.work_item_id,
      outcome: { state: 'timed_out' },
      trace_id: newTraceId(),
      at: record.expires_at,
    });
  }
}

/** A verdict as the contract's answer: 202 or 200, else the error it throws. */
function answerOf(workItemId: string, verdict: CallbackVerdict): CallbackAnswer {
  switch (verdict.kind) {
    case 'accepted':
      return { status: 202, body: { status: 'accepted', work_item_id: workItemId, duplicate: false } };
    case 'duplicate':
      return { status: 200, body: { status: 'accepted', work_item_id: workItemId, duplicate: true } };
    case 'forgotten':
      throw invalidToken();
    case 'conflict':
      throw new ApiError('token_already_used', 'this token was already used with a different body');
    case 'closed':
      throw verdict.code === 'conversation_ended'
        ? new ApiError('conversation_ended', 'the conversation has ended')
        : new ApiError('work_item_closed', 'the work item has already ended', { meta: { state: verdict.state } });
  }
}

/** The broker cannot take the result now, or we are shutting down: retrying is safe. */
function unavailable(): ApiError {
  return new ApiError('unavailable', 'the result cannot be stored right now; retry with the same token and body', {
    headers: { 'retry-after': String(RETRY_AFTER_UNAVAILABLE_S) },
  });
}

/** One answer for every kind of bad token: it never says which (CONTRACT.md §3). */
export function invalidToken(): ApiError {
  return new ApiError(
    'invalid_token',
    'the callback token is missing, malformed, unknown or not valid for this work item',
  );
}
