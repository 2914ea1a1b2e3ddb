import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsServerHandle } from '@backchannel/testing';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { CALLBACK_INGRESS } from '../src/callback-ingress.service-definition.js';
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

  it('202 first, 200 duplicate for the same JSON value re-serialised, 409 for another body', async () => {
    const item = await newItem();
    const first = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      result: { a: 1, b: [1, 2] },
    });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ status: 'accepted', work_item_id: item.work_item_id, duplicate: false });

    const replay = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: '{ "result": { "b": [1,2], "a": 1 } }',
      headers: { 'content-type': 'application/json', 'x-callback-token': item.token },
    });
    expect(replay.status).toBe(200);
    expect(replay.body.duplicate).toBe(true);

    const conflict = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: { a: 2 } });
    expect(conflict.status).toBe(409);
    expect(conflict.body.errors[0].code).toBe('token_already_used');
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
      expect(answer.status).toBe(401);
      expect(answer.body.errors[0].code).toBe('invalid_token');
      expect(JSON.stringify(answer.body)).not.toContain(item.token);
    }
    expect(answers.map((a) => a.body.errors[0].detail)).toEqual(Array(5).fill(answers[0].body.errors[0].detail));
  });

  it('400 with a pointer for the wrong shape; 413, 415 and malformed JSON', async () => {
    const item = await newItem();
    const wrongKind = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      message: { content: 'hi' },
    });
    expect(wrongKind.status).toBe(400);
    expect(wrongKind.body.errors[0].source.pointer).toBe('/message');
    const two = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 1, errors: [] });
    expect(two.status).toBe(400);
    const badError = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      errors: [{ code: 'x' }],
    });
    expect(badError.body.errors[0].source.pointer).toBe('/errors/0/title');

    const tooBig = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'x'.repeat(5000) });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.errors[0].code).toBe('payload_too_large');
    const notJson = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: 'result=1',
      headers: { 'content-type': 'text/plain', 'x-callback-token': item.token },
    });
    expect(notJson.status).toBe(415);
    const malformed = await http('POST', `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      rawBody: '{"result":',
      headers: { 'content-type': 'application/json', 'x-callback-token': item.token },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.errors[0].code).toBe('invalid_request');
    expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
  });

  it('410 for cancelled, ended and timed-out items', async () => {
    const cancelled = await newItem();
    expect((await platform.cancel(cancelled.work_item_id)).status).toBe(200);
    const afterCancel = await postCallback(ingress.service.url, cancelled.work_item_id, cancelled.token, { result: 1 });
    expect(afterCancel.status).toBe(410);
    expect(afterCancel.body.errors[0].code).toBe('work_item_closed');

    const ended = await newItem();
    await platform.endConversation(ended.conversationId);
    const afterEnd = await postCallback(ingress.service.url, ended.work_item_id, ended.token, { result: 1 });
    expect(afterEnd.status).toBe(410);
    expect(afterEnd.body.errors[0].code).toBe('conversation_ended');
  });

  it('progress: accepted while pending, repeated ids recognised, the eleventh refused', async () => {
    const item = await newItem();
    const url = `${ingress.service.url}/api/v1/webhooks/${item.work_item_id}/progress`;
    const headers = { 'x-callback-token': item.token };
    const first = await http('POST', url, {
      body: { progress: { id: 'p1', message: 'working', percent: 10 } },
      headers,
    });
    expect(first.status).toBe(202);
    const again = await http('POST', url, {
      body: { progress: { id: 'p1', message: 'working', percent: 10 } },
      headers,
    });
    expect(again.status).toBe(200);
    expect(again.body.duplicate).toBe(true);
    for (let i = 2; i <= 10; i++) {
      expect((await http('POST', url, { body: { progress: { message: `step ${i}` } }, headers })).status).toBe(202);
    }
    const eleventh = await http('POST', url, { body: { progress: { message: 'too many' } }, headers });
    expect(eleventh.status).toBe(429);
    expect(eleventh.body.errors[0].code).toBe('progress_limit_reached');
    expect((await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'done' })).status).toBe(
      202,
    );
    const late = await http('POST', url, { body: { progress: { message: 'late' } }, headers });
    expect(late.status).toBe(410);
  });
});
