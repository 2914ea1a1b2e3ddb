import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CONTRACT_HEADERS, ERROR_CODE } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { CALLBACK_INGRESS } from '../src/callback-ingress.service-definition.js';
import { expectError } from '../../../test/support/answers.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient, postCallback } from '../../../test/support/platform.js';

/**
 * CONTRACT.md §3: "When several answers apply, the first in this order wins: 413, 415,
 * 400 for malformed JSON, 429, 401, 400 for the shape, 503, 200 (identical replay), 410,
 * 409." Each case builds a request to which two (or more) answers apply and checks that
 * the earlier one is given, and that the refused request did not use up the token.
 */
const MAX_BODY_BYTES = 2048;
const OVERSIZED = 'x'.repeat(MAX_BODY_BYTES * 2);
const FOREIGN_TOKEN = `cbt_${'A'.repeat(43)}`;

describe('callback ingress: precedence of answers', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let ingress: TestService;
  let limited: TestService;
  let stopping: TestService;
  let platform: PlatformClient;
  let n = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    ta = await startTestService(TOKEN_AUTHORITY, nats);
    const bodyLimit = { CALLBACK_MAX_BODY_BYTES: String(MAX_BODY_BYTES) };
    ingress = await startTestService(CALLBACK_INGRESS, nats, bodyLimit);
    limited = await startTestService(CALLBACK_INGRESS, nats, { ...bodyLimit, INGRESS_RATE_LIMIT_PER_SOURCE: '2' });
    // An ingress that has begun shutting down (what SIGTERM does first) and keeps it up:
    // it still answers, and must answer 503 exactly where the order puts 503.
    stopping = await startTestService(CALLBACK_INGRESS, nats, bodyLimit);
    stopping.service.context.readiness.markStopping();
    platform = new PlatformClient(ta.service.url);
  });

  afterAll(async () => {
    for (const service of [stopping, limited, ingress, ta]) await service?.service.stop();
    await nats?.cleanup();
  });

  async function newItem(options: Record<string, unknown> = {}) {
    const conversationId = `precedence-${++n}`;
    await platform.openConversation(conversationId);
    return { conversationId, ...(await platform.register(conversationId, options)) };
  }

  const raw = (
    baseUrl: string,
    workItemId: string,
    body: string,
    headers: Record<string, string>,
  ): ReturnType<typeof http> => http('POST', `${baseUrl}/api/v1/webhooks/${workItemId}`, { rawBody: body, headers });

  /** The token still works: a refused request never uses it up. */
  async function expectTokenUnused(item: { work_item_id: string; token: string }) {
    const accepted = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'after' });
    expect(accepted.status).toBe(202);
  }

  it('413 beats 415 and 401: an oversized body is refused for its size first, declared or chunked', async () => {
    const item = await newItem();
    const text = { 'content-type': 'text/plain' };
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
      const answer = await raw(ingress.service.url, item.work_item_id, OVERSIZED, { 'content-type': type });
      expectError(answer, 413, ERROR_CODE.payload_too_large);
    }
    // No Content-Type at all (fetch adds none for bytes).
    const untyped = await fetch(`${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      method: 'POST',
      body: new TextEncoder().encode(OVERSIZED),
    });
    expectError({ status: untyped.status, body: await untyped.json() }, 413, ERROR_CODE.payload_too_large);
    expectError(
      await raw(ingress.service.url, item.work_item_id, JSON.stringify({ result: OVERSIZED }), {
        'content-type': 'application/json',
        [CONTRACT_HEADERS.callbackToken]: FOREIGN_TOKEN,
      }),
      413,
      ERROR_CODE.payload_too_large,
    );
    // No Content-Length: the size is only known while reading.
    const chunked = await fetch(`${ingress.service.url}/api/v1/webhooks/${item.work_item_id}`, {
      method: 'POST',
      headers: text,
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode(OVERSIZED));
          controller.close();
        },
      }),
      duplex: 'half',
    });
    expectError({ status: chunked.status, body: await chunked.json() }, 413, ERROR_CODE.payload_too_large);
    await expectTokenUnused(item);
  });

  it('415 beats 400 for malformed JSON and 401', async () => {
    const item = await newItem();
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      expectError(
        await raw(ingress.service.url, item.work_item_id, '{"result":', { 'content-type': type }),
        415,
        ERROR_CODE.unsupported_media_type,
      );
    }
    await expectTokenUnused(item);
  });

  it('400 for malformed JSON beats 401', async () => {
    const item = await newItem();
    for (const token of [undefined, FOREIGN_TOKEN, 'cbt_malformed']) {
      const answer = await raw(ingress.service.url, item.work_item_id, '{"result":', {
        'content-type': 'application/json',
        ...(token ? { [CONTRACT_HEADERS.callbackToken]: token } : {}),
      });
      expectError(answer, 400, ERROR_CODE.invalid_request);
    }
    await expectTokenUnused(item);
  });

  it('413, 415 and malformed JSON beat 429; 429 beats 401', async () => {
    const item = await newItem();
    const url = limited.service.url;
    const json = { 'content-type': 'application/json', [CONTRACT_HEADERS.callbackToken]: FOREIGN_TOKEN };
    // All at once: whichever the limiter counts, the first three kinds never reach it.
    const [badTokens, early] = await Promise.all([
      Promise.all(Array.from({ length: 6 }, () => raw(url, item.work_item_id, '{"result":1}', json))),
      Promise.all([
        raw(url, item.work_item_id, OVERSIZED, json),
        raw(url, item.work_item_id, '{"result":1}', { ...json, 'content-type': 'text/plain' }),
        raw(url, item.work_item_id, '{"result":', json),
      ]),
    ]);
    expectError(early[0], 413, ERROR_CODE.payload_too_large);
    expectError(early[1], 415, ERROR_CODE.unsupported_media_type);
    expectError(early[2], 400, ERROR_CODE.invalid_request);
    const limitedAnswers = badTokens.filter((answer) => answer.status === 429);
    expect(limitedAnswers.length).toBeGreaterThanOrEqual(4);
    for (const answer of limitedAnswers) expectError(answer, 429, ERROR_CODE.rate_limited);
    for (const answer of badTokens.filter((a) => a.status !== 429)) expectError(answer, 401, ERROR_CODE.invalid_token);
  });

  it('401 beats the shape 400: a wrong body with a bad token never reveals the kind', async () => {
    const item = await newItem();
    const other = await newItem();
    for (const token of [undefined, FOREIGN_TOKEN, other.token]) {
      const answer = await postCallback(ingress.service.url, item.work_item_id, token, { message: { content: 'x' } });
      expectError(answer, 401, ERROR_CODE.invalid_token);
    }
    await expectTokenUnused(item);
  });

  it('401 and the shape 400 beat 503 while shutting down; 503 beats the identical replay', async () => {
    const item = await newItem();
    const stoppingUrl = stopping.service.url;
    expectError(
      await postCallback(stoppingUrl, item.work_item_id, FOREIGN_TOKEN, { result: 1 }),
      401,
      ERROR_CODE.invalid_token,
    );
    const wrongShape = await postCallback(stoppingUrl, item.work_item_id, item.token, { message: { content: 'x' } });
    expectError(wrongShape, 400, ERROR_CODE.invalid_request);
    expect(wrongShape.body.errors[0].source.pointer).toBe('/message');
    const refused = await postCallback(stoppingUrl, item.work_item_id, item.token, { result: 'after' });
    expectError(refused, 503, ERROR_CODE.unavailable);
    expect(Number(refused.headers.get(CONTRACT_HEADERS.retryAfter))).toBeGreaterThanOrEqual(1);
    await expectTokenUnused(item);
    const replay = await postCallback(stoppingUrl, item.work_item_id, item.token, { result: 'after' });
    expectError(replay, 503, ERROR_CODE.unavailable);
    expect(Number(replay.headers.get(CONTRACT_HEADERS.retryAfter))).toBeGreaterThanOrEqual(1);
  });

  it('the shape 400 beats 410: a wrong body for a cancelled item', async () => {
    const item = await newItem();
    expect((await platform.cancel(item.work_item_id)).status).toBe(200);
    const wrongShape = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 1, extra: 2 });
    expectError(wrongShape, 400, ERROR_CODE.invalid_request);
    expectError(
      await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 1 }),
      410,
      ERROR_CODE.work_item_closed,
    );
  });

  it('200 identical replay beats 410: the same body after the conversation ended is a duplicate', async () => {
    const item = await newItem();
    const body = { result: { answer: 42, list: [1, 2] } };
    expect((await postCallback(ingress.service.url, item.work_item_id, item.token, body)).status).toBe(202);
    await platform.endConversation(item.conversationId);
    const replay = await raw(ingress.service.url, item.work_item_id, '{"result":{"list":[1,2],"answer":42}}', {
      'content-type': 'application/json',
      [CONTRACT_HEADERS.callbackToken]: item.token,
    });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ status: 'accepted', work_item_id: item.work_item_id, duplicate: true });
  });

  it('200 identical replay beats 410: the same body after the deadline passed is a duplicate', async () => {
    const item = await newItem({ timeout_ms: 1_000 });
    expect((await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'in time' })).status).toBe(
      202,
    );
    await eventually(() => expect(Date.now()).toBeGreaterThan(Date.parse(item.expires_at)));
    const replay = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'in time' });
    expect(replay.status).toBe(200);
    expect(replay.body.duplicate).toBe(true);
  });

  it('410 beats 409: another body after the conversation ended is 410 conversation_ended', async () => {
    const item = await newItem();
    expect((await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'first' })).status).toBe(
      202,
    );
    // Before the end, the same token with another body is the 409.
    expectError(
      await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'second' }),
      409,
      ERROR_CODE.token_already_used,
    );
    await platform.endConversation(item.conversationId);
    const late = await postCallback(ingress.service.url, item.work_item_id, item.token, { result: 'third' });
    expectError(late, 410, ERROR_CODE.conversation_ended);
    expect((await platform.workItem(item.work_item_id)).state).toBe('completed');
  });
});
