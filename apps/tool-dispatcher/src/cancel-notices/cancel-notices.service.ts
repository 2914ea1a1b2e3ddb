import { Inject, Injectable } from '@nestjs/common';
import type { CancelReason, WorkItemEndedEvent, WorkItemOutcome } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import { LOGGER } from '@backchannel/http';
import type { Logger } from '@backchannel/observability';
import { DispatchMetrics } from '../dispatch-metrics.js';
import { CANCEL_NOTICE_RETRY, withRetries } from '../outbound/retry-policy.js';
import { ToolHttpClient, ToolPostFailure } from '../outbound/tool-http-client.js';
import { cancelNoticeBody, newWebhookId, toolRequestHeaders, type RequestIdentity } from '../outbound/tool-request.js';
import { PendingDispatches, type HeldDispatch } from './pending-dispatches.js';

/** The notice's reason for an end, or undefined when the end needs no notice (CONTRACT.md §6). */
export function cancelReasonOf(outcome: WorkItemOutcome): CancelReason | undefined {
  switch (outcome.state) {
    case 'cancelled':
      return outcome.reason;
    case 'timed_out':
      return 'timed_out';
    case 'completed':
    case 'failed':
      return undefined;
  }
}

/**
 * Cancel notices: when an item this replica dispatched ends by cancel, deadline or the
 * conversation's end, tell the provider so it can stop work nobody will hear. Best
 * effort, retried once, signed when the invocation had a secret; every end forgets the
 * item, whatever it was.
 */
@Injectable()
export class CancelNoticesService {
  constructor(
    private readonly pending: PendingDispatches,
    private readonly http: ToolHttpClient,
    private readonly metrics: DispatchMetrics,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Pick<Logger, 'info' | 'warn'>,
  ) {}

  async onEnd(event: WorkItemEndedEvent): Promise<void> {
    const held = this.pending.take(event.work_item_id);
    if (!held) return;
    const reason = cancelReasonOf(event.outcome);
    if (reason) await this.notify(held, reason);
  }

  private async notify(held: HeldDispatch, reason: CancelReason): Promise<void> {
    const body = cancelNoticeBody({ workItemId: held.workItemId, conversationId: held.conversationId, reason });
    const identity: RequestIdentity = {
      callControlId: held.callControlId,
      traceId: held.traceId,
      webhookId: newWebhookId(),
      ...(held.signingSecret !== undefined ? { signingSecret: held.signingSecret } : {}),
    };
    try {
      await withRetries(
        CANCEL_NOTICE_RETRY,
        () => this.sendOnce(held, identity, body),
        (error) => !(error instanceof ToolPostFailure && error.kind === 'blocked'),
      );
      this.metrics.cancelNotice(reason, 'delivered');
      this.logger.info({ trace_id: held.traceId, work_item_id: held.workItemId, reason }, 'cancel notice delivered');
    } catch (error) {
      this.metrics.cancelNotice(reason, 'failed');
      this.logger.warn(
        { trace_id: held.traceId, work_item_id: held.workItemId, reason, err: error },
        'cancel notice not delivered',
      );
    }
  }

  private async sendOnce(held: HeldDispatch, identity: RequestIdentity, body: string): Promise<void> {
    const headers = toolRequestHeaders(identity, body, new Date(this.clock.now()));
    const answer = await this.http.post({
      url: held.url,
      headers,
      body,
      timeoutMs: held.ackTimeoutMs,
      readBody: false,
    });
    if (answer.status < 200 || answer.status > 299) throw new Error(`the tool answered HTTP ${answer.status}`);
  }
}
