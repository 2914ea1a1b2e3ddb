import { Inject, Injectable } from '@nestjs/common';
import { ulid } from 'ulid';
import { ApiError, ERROR_CODE, ERROR_CODES, type ErrorCode, type WorkItemState } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import { LOGGER } from '@backchannel/http';
import type { Logger } from '@backchannel/observability';
import { PendingDispatches } from '../cancel-notices/pending-dispatches.js';
import { DispatchMetrics, type DispatchOutcome } from '../dispatch-metrics.js';
import { DISPATCH_RETRY, withRetries } from '../outbound/retry-policy.js';
import { ToolHttpClient, ToolPostFailure } from '../outbound/tool-http-client.js';
import {
  asyncInvocationBody,
  newWebhookId,
  syncInvocationBody,
  toolRequestHeaders,
  type RequestIdentity,
} from '../outbound/tool-request.js';
import { ToolUrlGuard } from '../outbound/tool-url-guard.js';
import { DispatchEnds, type DispatchEndResult } from './dispatch-ends.js';
import type { Invocation } from './invocation.js';
import { resultOfSyncAnswer } from './sync-answer.js';
import { WorkItemRegistrar, type Registration } from './work-item-registrar.js';

export type InvokeAnswer =
  | { status: 200; body: { result: unknown } }
  | { status: 202; body: { work_item_id: string; sequence: number; state: WorkItemState } };

type Settled = { answer: InvokeAnswer; outcome: DispatchOutcome };

/** A provider answered, but not with a 2xx. */
class NotAcknowledged extends Error {
  constructor(readonly status: number) {
    super(`the tool answered HTTP ${status}`);
  }
}

/**
 * Tool invocations (CONTRACT.md §6), as steps:
 * 1. check the tool URL (scheme, resolved addresses): a refusal registers nothing;
 * 2. async: register a work item at the token authority (idempotent under a key made
 *    from this invocation), hold what a cancel notice needs, POST the invocation until a
 *    2xx arrives within `ack_timeout_ms` (3 attempts, backoff with full jitter); if none
 *    does, end the item as failed by dispatch and answer 502 `tool_unreachable`;
 * 3. sync: POST and wait up to `timeout_ms` for the result; never retried.
 */
@Injectable()
export class ToolInvocationsService {
  constructor(
    private readonly urlGuard: ToolUrlGuard,
    private readonly registrar: WorkItemRegistrar,
    private readonly http: ToolHttpClient,
    private readonly ends: DispatchEnds,
    private readonly pending: PendingDispatches,
    private readonly metrics: DispatchMetrics,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Pick<Logger, 'info' | 'warn'>,
  ) {}

  async invoke(invocation: Invocation, traceId: string): Promise<InvokeAnswer> {
    const mode = invocation.tool.mode;
    const startedAt = performance.now();
    let outcome: DispatchOutcome = 'error';
    let workItemId: unknown;
    try {
      const settled =
        mode === 'async' ? await this.invokeAsync(invocation, traceId) : await this.invokeSync(invocation, traceId);
      outcome = settled.outcome;
      if (settled.answer.status === 202) workItemId = settled.answer.body.work_item_id;
      return settled.answer;
    } catch (error) {
      outcome = outcomeOfError(error);
      if (error instanceof ApiError) workItemId = error.meta?.work_item_id;
      throw error;
    } finally {
      const seconds = (performance.now() - startedAt) / 1_000;
      this.metrics.invocationDone(mode, outcome, seconds);
      this.logger.info(
        { trace_id: traceId, mode, outcome, work_item_id: workItemId, duration_ms: Math.round(seconds * 1_000) },
        'tool invocation',
      );
    }
  }

  private async invokeAsync(invocation: Invocation, traceId: string): Promise<Settled> {
    const url = await this.urlGuard.check(invocation.tool.url);
    const invocationId = ulid();
    const registration = await this.registrar.register(
      {
        conversation_id: invocation.conversationId,
        kind: 'tool',
        ...(invocation.name !== undefined ? { name: invocation.name } : {}),
        timeout_ms: invocation.tool.timeoutMs,
        ordered: invocation.ordered,
        delivery: invocation.delivery,
        idempotency_key: `tool-invocation.${invocationId}`,
      },
      traceId,
    );
    const workItemId = registration.work_item_id;
    this.pending.hold({
      workItemId,
      conversationId: invocation.conversationId,
      url: url.href,
      callControlId: invocation.callControlId,
      ...(invocation.tool.signingSecret !== undefined ? { signingSecret: invocation.tool.signingSecret } : {}),
      traceId,
      ackTimeoutMs: invocation.tool.ackTimeoutMs,
      expiresAtMs: Date.parse(registration.expires_at),
    });
    const body = asyncInvocationBody({
      workItemId,
      conversationId: invocation.conversationId,
      arguments: invocation.arguments,
      callback: registration.callback,
    });
    const identity = this.identityOf(invocation, traceId, `msg_${invocationId}`);
    try {
      await withRetries(
        DISPATCH_RETRY,
        () => this.deliverOnce(url.href, identity, body, invocation.tool.ackTimeoutMs),
        // A refused address stays refused; an item that already ended needs no invocation.
        (error) => !isBlocked(error) && this.pending.has(workItemId),
      );
    } catch (failure) {
      return this.failDispatch(invocation, registration, failure, traceId);
    }
    return { outcome: 'acknowledged', answer: accepted(registration, 'pending') };
  }

  private async deliverOnce(url: string, identity: RequestIdentity, body: string, timeoutMs: number): Promise<void> {
    const headers = toolRequestHeaders(identity, body, new Date(this.clock.now()));
    const answer = await this.http.post({ url, headers, body, timeoutMs, readBody: false });
    if (answer.status < 200 || answer.status > 299) throw new NotAcknowledged(answer.status);
  }

  /**
   * The last attempt failed: the item ends as failed by dispatch, so the conversation gets
   * the error at the item's place. If another end won the race (the provider called back
   * before acknowledging, or the item was cancelled), that end stands and the invoke is
   * answered 202 with the item's state.
   */
  private async failDispatch(
    invocation: Invocation,
    registration: Registration,
    failure: unknown,
    traceId: string,
  ): Promise<Settled> {
    const workItemId = registration.work_item_id;
    const detail = describeFailure(failure);
    let end: DispatchEndResult | undefined;
    try {
      end = await this.ends.recordFailure({
        conversationId: invocation.conversationId,
        workItemId,
        errors: [{ code: ERROR_CODE.tool_unreachable, title: ERROR_CODES.tool_unreachable.title, detail }],
        traceId,
      });
    } catch (error) {
      this.logger.warn(
        { err: error, trace_id: traceId, work_item_id: workItemId },
        'could not record the dispatch failure; the item will time out',
      );
    } finally {
      this.pending.forget(workItemId);
    }
    if (end && !end.won) return { outcome: 'superseded', answer: accepted(registration, end.state) };
    throw new ApiError('tool_unreachable', detail, { meta: { work_item_id: workItemId } });
  }

  private async invokeSync(invocation: Invocation, traceId: string): Promise<Settled> {
    const url = await this.urlGuard.check(invocation.tool.url);
    const body = syncInvocationBody({ conversationId: invocation.conversationId, arguments: invocation.arguments });
    const headers = toolRequestHeaders(
      this.identityOf(invocation, traceId, newWebhookId()),
      body,
      new Date(this.clock.now()),
    );
    let answer;
    try {
      answer = await this.http.post({
        url: url.href,
        headers,
        body,
        timeoutMs: invocation.tool.timeoutMs,
        readBody: true,
      });
    } catch (error) {
      throw syncFailure(error, invocation.tool.timeoutMs);
    }
    return { outcome: 'succeeded', answer: { status: 200, body: { result: resultOfSyncAnswer(answer) } } };
  }

  private identityOf(invocation: Invocation, traceId: string, webhookId: string): RequestIdentity {
    return {
      callControlId: invocation.callControlId,
      traceId,
      webhookId,
      ...(invocation.tool.signingSecret !== undefined ? { signingSecret: invocation.tool.signingSecret } : {}),
    };
  }
}

function accepted(registration: Registration, state: WorkItemState): InvokeAnswer {
  return { status: 202, body: { work_item_id: registration.work_item_id, sequence: registration.sequence, state } };
}

function isBlocked(error: unknown): boolean {
  return error instanceof ToolPostFailure && error.kind === 'blocked';
}

function describeFailure(failure: unknown): string {
  if (failure instanceof NotAcknowledged)
    return `the tool did not acknowledge the invocation (last answer: HTTP ${failure.status})`;
  if (failure instanceof ToolPostFailure && failure.kind === 'timeout') {
    return 'the tool did not acknowledge the invocation within ack_timeout_ms';
  }
  if (isBlocked(failure)) return "the tool's host resolved to a refused address";
  return 'the tool could not be reached';
}

function syncFailure(error: unknown, timeoutMs: number): ApiError {
  if (!(error instanceof ToolPostFailure)) return new ApiError('tool_unreachable', 'the tool could not be reached');
  switch (error.kind) {
    case 'timeout':
      return new ApiError('tool_timeout', `the tool did not answer within ${timeoutMs} ms`);
    case 'blocked':
      return new ApiError('invalid_request', "tool.url's host resolves to a refused address", { pointer: '/tool/url' });
    case 'too_large':
      return new ApiError('tool_failed', error.message);
    case 'network':
      return new ApiError('tool_unreachable', 'the tool could not be reached');
  }
}

const OUTCOME_OF_CODE: Partial<Record<ErrorCode, DispatchOutcome>> = {
  tool_unreachable: 'unreachable',
  tool_failed: 'tool_failed',
  tool_timeout: 'timeout',
  unavailable: 'unavailable',
};

/** Refusals (4xx: invalid, unknown or ended conversation) are `rejected`; the rest by code. */
function outcomeOfError(error: unknown): DispatchOutcome {
  if (!(error instanceof ApiError)) return 'error';
  return OUTCOME_OF_CODE[error.code] ?? (error.status < 500 ? 'rejected' : 'error');
}
