import { Webhook } from 'standardwebhooks';
import { ulid } from 'ulid';
import type { CancelReason } from '@backchannel/contracts';
import { childTraceparent } from '@backchannel/observability';

/** What the provider gets to call back with (CONTRACT.md §2 `callback`). */
export interface CallbackTarget {
  url: string;
  method: 'POST';
  headers: Record<string, string>;
}

/** The async invocation body (CONTRACT.md §6). */
export function asyncInvocationBody(input: {
  workItemId: string;
  conversationId: string;
  arguments: Record<string, unknown>;
  callback: CallbackTarget;
}): string {
  return JSON.stringify({
    type: 'tool.invocation',
    work_item_id: input.workItemId,
    conversation_id: input.conversationId,
    arguments: input.arguments,
    callback: input.callback,
  });
}

/** The sync invocation body (CONTRACT.md §6): no work item, no callback. */
export function syncInvocationBody(input: { conversationId: string; arguments: Record<string, unknown> }): string {
  return JSON.stringify({ type: 'tool.invocation', conversation_id: input.conversationId, arguments: input.arguments });
}

/** The cancel notice body (CONTRACT.md §6). */
export function cancelNoticeBody(input: { workItemId: string; conversationId: string; reason: CancelReason }): string {
  return JSON.stringify({
    type: 'work_item.cancelled',
    work_item_id: input.workItemId,
    conversation_id: input.conversationId,
    reason: input.reason,
  });
}

/** Who a request is from and for: the same for every attempt of one message. */
export interface RequestIdentity {
  callControlId: string;
  traceId: string;
  /** Standard Webhooks message id: retries of one request keep it (CONTRACT.md §6). */
  webhookId: string;
  signingSecret?: string;
}

/**
 * The headers of one attempt: call-control id, a `traceparent` in the invocation's trace,
 * and, with a secret, Standard Webhooks `webhook-id` / `webhook-timestamp` /
 * `webhook-signature` (the timestamp is the attempt's, the id the message's).
 */
export function toolRequestHeaders(identity: RequestIdentity, body: string, now: Date): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-call-control-id': identity.callControlId,
    traceparent: childTraceparent(identity.traceId),
  };
  if (identity.signingSecret === undefined) return headers;
  headers['webhook-id'] = identity.webhookId;
  headers['webhook-timestamp'] = String(Math.floor(now.getTime() / 1000));
  headers['webhook-signature'] = new Webhook(identity.signingSecret).sign(identity.webhookId, now, body);
  return headers;
}

/** A fresh Standard Webhooks message id. */
export function newWebhookId(): string {
  return `msg_${ulid()}`;
}

/** Whether a secret is usable by the Standard Webhooks library (valid base64, not empty). */
export function isUsableSigningSecret(secret: string): boolean {
  try {
    new Webhook(secret);
    return true;
  } catch {
    return false;
  }
}
