import { describe, expect, it } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import {
  asyncInvocationBody,
  cancelNoticeBody,
  isUsableSigningSecret,
  newWebhookId,
  syncInvocationBody,
  toolRequestHeaders,
} from './tool-request.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

describe('tool requests', () => {
  it('builds the async, sync and cancel bodies of CONTRACT.md §6', () => {
    const callback = {
      url: 'https://in.example/api/v1/webhooks/wi_1',
      method: 'POST' as const,
      headers: { 'x-callback-token': 'cbt_x' },
    };
    expect(
      JSON.parse(asyncInvocationBody({ workItemId: 'wi_1', conversationId: 'c1', arguments: { q: 1 }, callback })),
    ).toEqual({
      type: 'tool.invocation',
      work_item_id: 'wi_1',
      conversation_id: 'c1',
      arguments: { q: 1 },
      callback,
    });
    expect(JSON.parse(syncInvocationBody({ conversationId: 'c1', arguments: { q: 1 } }))).toEqual({
      type: 'tool.invocation',
      conversation_id: 'c1',
      arguments: { q: 1 },
    });
    expect(JSON.parse(cancelNoticeBody({ workItemId: 'wi_1', conversationId: 'c1', reason: 'timed_out' }))).toEqual({
      type: 'work_item.cancelled',
      work_item_id: 'wi_1',
      conversation_id: 'c1',
      reason: 'timed_out',
    });
  });

  it('signs with Standard Webhooks: verifiable, one webhook-id across attempts, a timestamp per attempt', () => {
    const body = syncInvocationBody({ conversationId: 'c1', arguments: {} });
    const identity = { callControlId: 'call-7', traceId: TRACE_ID, webhookId: newWebhookId(), signingSecret: SECRET };
    const first = toolRequestHeaders(identity, body, new Date());
    const retry = toolRequestHeaders(identity, body, new Date(Date.now() + 2_000));

    expect(first).toMatchObject({
      'content-type': 'application/json',
      'x-call-control-id': 'call-7',
      'webhook-id': identity.webhookId,
      traceparent: expect.stringMatching(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`)),
    });
    expect(retry['webhook-id']).toBe(first['webhook-id']);
    for (const headers of [first, retry]) expect(new Webhook(SECRET).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(SECRET).verify(body.replace('c1', 'c2'), first)).toThrow();
  });

  it('sends no signature headers without a secret', () => {
    const headers = toolRequestHeaders(
      { callControlId: 'c', traceId: TRACE_ID, webhookId: newWebhookId() },
      '{}',
      new Date(),
    );
    expect(Object.keys(headers).sort()).toEqual(['content-type', 'traceparent', 'x-call-control-id']);
  });

  it('tells usable secrets from unusable ones', () => {
    expect(isUsableSigningSecret(SECRET)).toBe(true);
    expect(isUsableSigningSecret('whsec_')).toBe(false);
  });
});
