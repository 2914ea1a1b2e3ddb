import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CONTRACT_HEADERS, ERROR_CODE, MAX_PROGRESS_UPDATES } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { CALLBACK_INGRESS } from '../src/callback-ingress.service-definition.js';
import { expectError } from '../../../test/support/answers.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient, postCallback } from '../../../test/support/platform.js';

describe('callback ingress: the answer table', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let ingress: TestService;
  let platform: PlatformClient;
  let n = 0;
  const conversation = () => `conv-${++n}`;

  beforeAll(async () => {
    nats = await startNatsServer();
    ta = await startTestService(TOKEN_AUTHORITY, nats);
    ingress = await startTestService(CALLBACK_INGRESS, nats, { CALLBACK_MAX_BODY_BYTES: '2048' });
    platform = new PlatformClient(ta.service.url);
  });

  afterAll(async () => {
    await ingress?.service.stop();
    await ta?.service.stop();
    await nats?.cleanup();
  });

  async function newItem(options: Record<string, unknown> = {}) {
    const id = conversation();
    await platform.openConversation(id);
    return { conversationId: id, ...(await platform.register(id, options)) };
  }

  const postProgress = (item: { work_item_id: string; token: string }, body: unknown, token = item.token) =>
    http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}/progress`, {
      body,
      headers: { [CONTRACT_HEADERS.callbackToken]: token },
    });

  /** Until the token authority itself reports the deadline passed (no callback meanwhile). */
  const untilTimedOut = (workItemId: string) =>
    eventually(async () => expect((await platform.workItem(workItemId)).state).toBe('timed_out'));

  it('202 first, 200 duplicate for the same JSON value re-serialised, 409 for another body', async () => {
    const item = await newItem();
    const first = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      result: { a: 1, b: [1, 2] },
    });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ status: 'accepted', work_item_id: item.work_item_id, duplicate: false });

    const replay = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: '{ "result": { "b": [1,2], "a": 1 } }',
      headers: { 'content-type': 'application/json', [CONTRACT_HEADERS.callbackToken]: item.token },
    });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ status: 'accepted', work_item_id: item.work_item_id, duplicate: true });

    const conflict = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: { a: 2 } });
    expectError(conflict, 409, ERROR_CODE.token_already_used);
    expect((await platform.workItem(item.work_item_id)).state).toBe('completed');
  });

  it('401 alike for missing, malformed, unknown and foreign tokens, never echoing them', async () => {
    const item = await newItem();
    const other = await newItem();
    const answers = await Promise.all([
      postCallback(ingress.service.url, item.work_item_id, undefined, { result: 1 }),
      postCallback(ingress.service.url, item.work_item_id, 'cbt_short', { result: 1 }),
      postCallback(ingress.service.url, item.work_item_id, `cbt_${'A'.repeat(43)}`, { result: 1 }),
      postCallback(ingress.service.url, item.work_item_id, other.token, { result: 1 }),
      postCallback(ingress.service.url, 'wi_nope', item.token, { result: 1 }),
    ]);
    for (const answer of answers) {
      expectError(answer, 401, ERROR_CODE.invalid_token);
      expect(JSON.stringify(answer.body)).not.toContain(item.token);
    }
    expect(answers.map((a) => a.body.errors[0].detail)).toEqual(Array(5).fill(answers[0].body.errors[0].detail));
  });

  it('400 with a pointer for the wrong shape; 413, 415 and malformed JSON', async () => {
    const item = await newItem();
    const wrongKind = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      message: { content: 'hi' },
    });
    expectError(wrongKind, 400, ERROR_CODE.invalid_request);
    expect(wrongKind.body.errors[0].source.pointer).toBe('/message');
    const two = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 1, errors: [] });
    expectError(two, 400, ERROR_CODE.invalid_request);
    const badError = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      errors: [{ code: 'x' }],
    });
    expectError(badError, 400, ERROR_CODE.invalid_request);
    expect(badError.body.errors[0].source.pointer).toBe('/errors/0/title');

    const tooBig = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'x'.repeat(5000) });
    expectError(tooBig, 413, ERROR_CODE.payload_too_large);
    const notJson = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: 'result=1',
      headers: { 'content-type': 'text/plain', [CONTRACT_HEADERS.callbackToken]: item.token },
    });
    expectError(notJson, 415, ERROR_CODE.unsupported_media_type);
    const form = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: 'result=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded', [CONTRACT_HEADERS.callbackToken]: item.token },
    });
    expectError(form, 415, ERROR_CODE.unsupported_media_type);
    const malformed = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: '{"result":',
      headers: { 'content-type': 'application/json', [CONTRACT_HEADERS.callbackToken]: item.token },
    });
    expectError(malformed, 400, ERROR_CODE.invalid_request);
    expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
  });

  it('410 for cancelled and ended items', async () => {
    const cancelled = await newItem();
    expect((await platform.cancel(cancelled.work_item_id)).status).toBe(200);
    const afterCancel = await postCallback(ingress.service.url, cancelled.work_item_id, cancelled.token, { result: 1 });
    expectError(afterCancel, 410, ERROR_CODE.work_item_closed);
    expect(afterCancel.body.errors[0].meta.state).toBe('cancelled');

    const ended = await newItem();
    await platform.endConversation(ended.conversationId);
    const afterEnd = await postCallback(ingress.service.url, ended.work_item_id, ended.token, { result: 1 });
    expectError(afterEnd, 410, ERROR_CODE.conversation_ended);
  });

  it('410 work_item_closed for a work item that timed out, for its result and its progress', async () => {
    const item = await newItem({ timeout_ms: 1_000 });
    await untilTimedOut(item.work_item_id);
    const late = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'too late' });
    expectError(late, 410, ERROR_CODE.work_item_closed);
    expect(late.body.errors[0].meta.state).toBe('timed_out');
    expectError(await postProgress(item, { progress: { message: 'still here' } }), 410, ERROR_CODE.work_item_closed);
    expect((await platform.workItem(item.work_item_id)).state).toBe('timed_out');
  });

  it('progress: accepted while pending, repeated ids recognised, the eleventh refused, 410 after the end', async () => {
    const item = await newItem();
    const first = await postProgress(item, { progress: { id: 'p1', message: 'working', percent: 10 } });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ status: 'accepted', work_item_id: item.work_item_id });
    const again = await postProgress(item, { progress: { id: 'p1', message: 'working', percent: 10 } });
    expect(again.status).toBe(200);
    expect(again.body.duplicate).toBe(true);
    for (let i = 2; i <= MAX_PROGRESS_UPDATES; i++) {
      expect((await postProgress(item, { progress: { message: `step ${i}` } })).status).toBe(202);
    }
    expectError(
      await postProgress(item, { progress: { message: 'too many' } }),
      429,
      ERROR_CODE.progress_limit_reached,
    );
    expect((await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'done' })).status).toBe(
      202,
    );
    const late = await postProgress(item, { progress: { message: 'late' } });
    expectError(late, 410, ERROR_CODE.work_item_closed);
    expect(late.body.errors[0].meta.state).toBe('completed');
  });

  it('rejected progress updates do not count toward the limit of 10', async () => {
    const item = await newItem();
    const other = await newItem();
    const rejected = async () => {
      expectError(
        await postProgress(item, { progress: { message: 'x', percent: 101 } }),
        400,
        ERROR_CODE.invalid_request,
      );
      expectError(await postProgress(item, { progress: { message: '' } }), 400, ERROR_CODE.invalid_request);
      expectError(
        await postProgress(item, { progress: { message: 'x'.repeat(1_001) } }),
        400,
        ERROR_CODE.invalid_request,
      );
      expectError(await postProgress(item, { progress: { message: 'x' }, extra: 1 }), 400, ERROR_CODE.invalid_request);
      expectError(await postProgress(item, { progress: { message: 'x' } }, other.token), 401, ERROR_CODE.invalid_token);
    };
    await rejected();
    expect((await postProgress(item, { progress: { id: 'first', message: 'step 1' } })).status).toBe(202);
    for (let i = 2; i <= MAX_PROGRESS_UPDATES; i++) {
      await rejected();
      // A repeated id is answered, but is not a new update either.
      expect((await postProgress(item, { progress: { id: 'first', message: 'step 1' } })).status).toBe(200);
      const accepted = await postProgress(item, { progress: { message: `step ${i}` } });
      expect({ step: i, status: accepted.status }).toEqual({ step: i, status: 202 });
    }
    expectError(
      await postProgress(item, { progress: { message: 'eleventh' } }),
      429,
      ERROR_CODE.progress_limit_reached,
    );
    // Neither was the refused eleventh: the token still takes the final result.
    expect((await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'done' })).status).toBe(
      202,
    );
  });

  it('progress does not extend timeout_ms: the deadline stays where registration put it', async () => {
    const item = await newItem({ timeout_ms: 1_000 });
    for (let i = 1; i <= 3; i++) {
      expect((await postProgress(item, { progress: { message: `step ${i}` } })).status).toBe(202);
    }
    expect((await platform.workItem(item.work_item_id)).expires_at).toBe(item.expires_at);
    await untilTimedOut(item.work_item_id);
    const late = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'after progress' });
    expectError(late, 410, ERROR_CODE.work_item_closed);
    expect(late.body.errors[0].meta.state).toBe('timed_out');
    const read = await platform.workItem(item.work_item_id);
    expect(read).toMatchObject({ state: 'timed_out', expires_at: item.expires_at });
  });

  it('security headers and x-request-id on an accepted callback and on error answers', async () => {
    const item = await newItem();
    const expectSecurityHeaders = (headers: Headers) => {
      expect(headers.get('x-content-type-options')).toBe('nosniff');
      expect(headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(headers.get('x-frame-options')).not.toBeNull();
      expect(headers.get('referrer-policy')).toBe('no-referrer');
    };
    const accepted = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 1 });
    expect(accepted.status).toBe(202);
    expectSecurityHeaders(accepted.headers);
    expect(accepted.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._-]{1,64}$/);

    const refused = await postCallback(ingress.service.url, item.work_item_id, undefined, { result: 1 });
    expectError(refused, 401, ERROR_CODE.invalid_token);
    expectSecurityHeaders(refused.headers);
    expect(refused.headers.get('x-request-id')).toBe(refused.body.errors[0].meta.request_id);
    expect(refused.headers.get('x-request-id')).not.toBe(accepted.headers.get('x-request-id'));

    // A caller's own request id is kept, on an answer refused before any route runs too.
    const tooBig = await postCallback(
      ingress.service.url,
      item.work_item_id,
      item.token,
      { result: 'x'.repeat(5000) },
      { 'x-request-id': 'provider-req-42' },
    );
    expectError(tooBig, 413, ERROR_CODE.payload_too_large);
    expectSecurityHeaders(tooBig.headers);
    expect(tooBig.headers.get('x-request-id')).toBe('provider-req-42');
    expect(tooBig.body.errors[0].meta.request_id).toBe('provider-req-42');
  });
});
