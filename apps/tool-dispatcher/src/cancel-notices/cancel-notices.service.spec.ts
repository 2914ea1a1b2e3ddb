import { describe, expect, it } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import type { WorkItemEndedEvent, WorkItemOutcome } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import type { ToolAnswer, ToolPost } from '../outbound/tool-http-client.js';
import { FakeToolHttp, SILENT_LOGGER, testMetrics } from '../../test/fakes.js';
import { CancelNoticesService, cancelReasonOf } from './cancel-notices.service.js';
import { PendingDispatches, type HeldDispatch } from './pending-dispatches.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
const HELD: HeldDispatch = {
  workItemId: 'wi_01HZX0000000000000000000AB',
  conversationId: 'conv-1',
  url: 'http://tool.test/x',
  callControlId: 'call-9',
  signingSecret: SECRET,
  traceId: '0af7651916cd43dd8448eb211c80319c',
  ackTimeoutMs: 700,
  expiresAtMs: Date.now() + 60_000,
};

function ended(outcome: WorkItemOutcome, workItemId = HELD.workItemId): WorkItemEndedEvent {
  return {
    type: 'work_item.ended',
    conversation_id: 'conv-1',
    work_item_id: workItemId,
    outcome,
    trace_id: HELD.traceId,
    at: new Date().toISOString(),
  };
}

function setup(
  script: (post: ToolPost, index: number) => Promise<ToolAnswer> = () => Promise.resolve({ status: 200 }),
) {
  const http = new FakeToolHttp(script);
  const pending = new PendingDispatches();
  pending.hold(HELD);
  const { metrics, dispatch } = testMetrics();
  const sut = new CancelNoticesService(pending, http, dispatch, new Clock(), SILENT_LOGGER);
  return { sut, http, pending, metrics };
}

describe('cancelReasonOf', () => {
  it('maps the ends that need a notice, and only those', () => {
    expect(cancelReasonOf({ state: 'cancelled', reason: 'cancelled' })).toBe('cancelled');
    expect(cancelReasonOf({ state: 'cancelled', reason: 'conversation_ended' })).toBe('conversation_ended');
    expect(cancelReasonOf({ state: 'timed_out' })).toBe('timed_out');
    expect(cancelReasonOf({ state: 'completed', result: 1 })).toBeUndefined();
    expect(cancelReasonOf({ state: 'failed', errors: [], by: 'callback' })).toBeUndefined();
  });
});

describe('CancelNoticesService', () => {
  it.each([
    [{ state: 'cancelled', reason: 'cancelled' }, 'cancelled'],
    [{ state: 'timed_out' }, 'timed_out'],
    [{ state: 'cancelled', reason: 'conversation_ended' }, 'conversation_ended'],
  ] as const)('sends a signed notice for %j with reason %s, then forgets the item', async (outcome, reason) => {
    const { sut, http, pending, metrics } = setup();
    await sut.onEnd(ended(outcome));

    expect(http.posts).toHaveLength(1);
    const [post] = http.posts;
    expect(post).toMatchObject({ url: HELD.url, timeoutMs: 700, readBody: false });
    expect(post.headers['x-call-control-id']).toBe('call-9');
    expect(post.headers.traceparent).toContain(HELD.traceId);
    expect(new Webhook(SECRET).verify(post.body, post.headers)).toEqual({
      type: 'work_item.cancelled',
      work_item_id: HELD.workItemId,
      conversation_id: 'conv-1',
      reason,
    });
    expect(pending.size).toBe(0);
    expect((await metrics.render()).body).toMatch(
      new RegExp(`backchannel_cancel_notices_total\\{reason="${reason}",outcome="delivered"[^}]*\\} 1`),
    );
  });

  it('forgets an item that completed or failed without any notice, and ignores items it does not hold', async () => {
    const { sut, http, pending } = setup();
    await sut.onEnd(ended({ state: 'completed', result: 1 }, 'wi_01HZX0000000000000000000ZZ'));
    expect(pending.size).toBe(1);
    await sut.onEnd(ended({ state: 'completed', result: 1 }));
    expect(pending.size).toBe(0);
    await sut.onEnd(ended({ state: 'cancelled', reason: 'cancelled' }));
    expect(http.posts).toHaveLength(0);
  });

  it('retries once, keeping the webhook-id, and counts a notice that never got through as failed', async () => {
    const once = setup((_post, index) => Promise.resolve({ status: index === 0 ? 503 : 204 }));
    await once.sut.onEnd(ended({ state: 'timed_out' }));
    expect(once.http.posts).toHaveLength(2);
    expect(once.http.posts[1].headers['webhook-id']).toBe(once.http.posts[0].headers['webhook-id']);

    const never = setup(() => Promise.resolve({ status: 500 }));
    await never.sut.onEnd(ended({ state: 'timed_out' }));
    expect(never.http.posts).toHaveLength(2);
    expect((await never.metrics.render()).body).toMatch(
      /backchannel_cancel_notices_total\{reason="timed_out",outcome="failed"[^}]*\} 1/,
    );
  });
});
