import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { API_SUBJECTS, CONTRACT_HEADERS, ERROR_CODE } from '@backchannel/contracts';
import { ManualClock, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../callback-ingress/src/callback-ingress.service-definition.js';
import { TokenAuthorityModule } from '../src/token-authority.module.js';
import { TOKEN_AUTHORITY } from '../src/token-authority.service-definition.js';
import { expectError, type Answer } from '../../../test/support/answers.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { NatsApiClient } from '../../../test/support/nats-client.js';
import { postCallback } from '../../../test/support/platform.js';

/**
 * Every platform operation of CONTRACT.md §2 and its error codes, over both transports:
 * the same request must give the same result object or the same error code, and over
 * HTTP the exact status (201 for what is created now, 200 for what already was).
 */
type Call = (subject: string, path: { method: string; url: string }, body?: unknown) => Promise<Answer>;

const UNKNOWN_WORK_ITEM = 'wi_01ARZ3NDEKTSV4RRFFQ69G5FAV';
const UNKNOWN_KEY = 'key_01ARZ3NDEKTSV4RRFFQ69G5FAV';

describe.each(['http', 'nats'] as const)('token authority platform API over %s', (transport) => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let ingress: TestService;
  let client: NatsApiClient;
  let call: Call;
  let n = 0;
  const clock = new ManualClock();
  const id = (prefix: string) => `${prefix}-${transport}-${++n}`;

  beforeAll(async () => {
    nats = await startNatsServer();
    ta = await startTestService(
      { ...TOKEN_AUTHORITY, module: (context) => TokenAuthorityModule.register(context, clock) },
      nats,
    );
    ingress = await startTestService(CALLBACK_INGRESS, nats);
    client = await NatsApiClient.connect(nats.url);
    call = async (subject, path, body) => {
      if (transport === 'nats')
        return { body: await client.request(subject, { ...pathParams(path.url), ...(body as object) }) };
      return http(path.method, `${ta.service.url}/internal/v1${path.url}`, { internal: true, body });
    };
  });

  afterAll(async () => {
    await client?.close();
    await ingress?.service.stop();
    await ta?.service.stop();
    await nats?.cleanup();
  });

  const open = (conversation_id: string, tenant_id = 't1', extra: object = {}) =>
    call(
      API_SUBJECTS.conversationsOpen,
      { method: 'POST', url: '/conversations' },
      { conversation_id, tenant_id, ...extra },
    );
  const register = (conversation_id: string, extra: object = {}) =>
    call(
      API_SUBJECTS.workItemsRegister,
      { method: 'POST', url: '/work-items' },
      { conversation_id, kind: 'tool', ...extra },
    );
  const end = (conversation_id: string) =>
    call(API_SUBJECTS.conversationsEnd, { method: 'POST', url: `/conversations/${conversation_id}/end` }, {});
  const get = (work_item_id: string) =>
    call(API_SUBJECTS.workItemsGet, { method: 'GET', url: `/work-items/${work_item_id}` });
  const cancel = (work_item_id: string) =>
    call(API_SUBJECTS.workItemsCancel, { method: 'POST', url: `/work-items/${work_item_id}/cancel` });
  const createKey = (tenant_id: unknown) =>
    call(API_SUBJECTS.apiKeysCreate, { method: 'POST', url: '/api-keys' }, { tenant_id });
  const revokeKey = (key_id: string) =>
    call(API_SUBJECTS.apiKeysRevoke, { method: 'POST', url: `/api-keys/${key_id}/revoke` });

  /** A result (no envelope), answered over HTTP with exactly `status`. */
  const expectResult = (answer: Answer, status: 200 | 201) => {
    expect(answer.body?.errors).toBeUndefined();
    if (transport === 'http') expect(answer.status).toBe(status);
  };

  it('opens a conversation (201), again idempotently (200), and refuses conflicts (409) and ended ones (410)', async () => {
    const conversation = id('conv');
    const opened = await open(conversation, 't1', { metadata: { channel: 'voice' } });
    expectResult(opened, 201);
    expect(opened.body).toMatchObject({ conversation_id: conversation, tenant_id: 't1', state: 'active' });
    expect(opened.body.opened_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    const again = await open(conversation);
    expectResult(again, 200);
    expect(again.body).toEqual(opened.body);
    expectError(await open(conversation, 't2'), 409, ERROR_CODE.conversation_conflict);
    expectResult(await end(conversation), 200);
    expectError(await open(conversation), 410, ERROR_CODE.conversation_ended);
  });

  it('rejects malformed input with 400 invalid_request and a pointer, changing nothing', async () => {
    const bad = await open('has space', 't1');
    expectError(bad, 400, ERROR_CODE.invalid_request);
    expect(bad.body.errors[0].source.pointer).toBe('/conversation_id');
    expectError(await open(id('conv'), 't1', { metadata: { big: 'x'.repeat(5000) } }), 400, ERROR_CODE.invalid_request);
    const conversation = id('conv');
    expectResult(await open(conversation), 201);
    const badTimeout = await register(conversation, { timeout_ms: 999 });
    expectError(badTimeout, 400, ERROR_CODE.invalid_request);
    expect(badTimeout.body.errors[0].source.pointer).toBe('/timeout_ms');
    expectError(await register(conversation, { kind: 'robot' }), 400, ERROR_CODE.invalid_request);
    expectError(await register(conversation, { surprise: true }), 400, ERROR_CODE.invalid_request);
    const first = await register(conversation);
    expectResult(first, 201);
    expect(first.body.sequence).toBe(1);
  });

  it('registers work items (201) with gap-free sequences, deadlines and callback blocks; 404 and 410 otherwise', async () => {
    const conversation = id('conv');
    await open(conversation);
    const first = await register(conversation, { timeout_ms: 60_000, name: 'lookup', delivery: 'interrupt' });
    const second = await register(conversation, { kind: 'llm', ordered: false });
    expectResult(first, 201);
    expectResult(second, 201);
    expect([first.body.sequence, second.body.sequence]).toEqual([1, 2]);
    expect(first.body.work_item_id).toMatch(/^wi_[0-9A-Z]{26}$/);
    expect(Date.parse(first.body.expires_at) - Date.now()).toBeGreaterThan(55_000);
    expect(first.body.callback).toMatchObject({
      method: 'POST',
      url: expect.stringContaining(`/api/v1/webhooks/${first.body.work_item_id}`),
    });
    const read = await get(first.body.work_item_id);
    expectResult(read, 200);
    expect(read.body).toMatchObject({
      state: 'pending',
      sequence: 1,
      kind: 'tool',
      name: 'lookup',
      delivery: 'interrupt',
    });
    expect(JSON.stringify(read.body)).not.toContain('cbt_');
    expectError(await register(id('missing')), 404, ERROR_CODE.not_found);
    await end(conversation);
    expectError(await register(conversation), 410, ERROR_CODE.conversation_ended);
  });

  it('reads a work item: 404 not_found for an unknown id, 400 invalid_request for a malformed one', async () => {
    expectError(await get(UNKNOWN_WORK_ITEM), 404, ERROR_CODE.not_found);
    const malformed = await get('wi_not-a-ulid');
    expectError(malformed, 400, ERROR_CODE.invalid_request);
    expect(malformed.body.errors[0].source.pointer).toBe('/work_item_id');
  });

  it('returns the same work item and token for a retried idempotency_key (201 first, 200 on retry)', async () => {
    const conversation = id('conv');
    await open(conversation);
    const first = await register(conversation, { idempotency_key: 'retry-me' });
    expectResult(first, 201);
    const retry = await register(conversation, { idempotency_key: 'retry-me' });
    expectResult(retry, 200);
    expect(retry.body).toEqual(first.body);
    const other = await register(conversation, { idempotency_key: 'another' });
    expectResult(other, 201);
    expect(other.body.sequence).toBe(2);
  });

  it('cancels once (200), answers a repeated cancel the same, refuses cancelling a timed-out item (410)', async () => {
    const conversation = id('conv');
    await open(conversation);
    const item = (await register(conversation)).body;
    const cancelled = await cancel(item.work_item_id);
    expectResult(cancelled, 200);
    expect(cancelled.body.state).toBe('cancelled');
    const again = await cancel(item.work_item_id);
    expectResult(again, 200);
    expect(again.body).toEqual(cancelled.body);
    expectError(await cancel(UNKNOWN_WORK_ITEM), 404, ERROR_CODE.not_found);
    expectError(await cancel('not-an-id'), 400, ERROR_CODE.invalid_request);
    const timedOut = (await register(conversation, { timeout_ms: 1_000 })).body;
    clock.advance(1_000);
    const late = await cancel(timedOut.work_item_id);
    expectError(late, 410, ERROR_CODE.work_item_closed);
    expect(late.body.errors[0].meta.state).toBe('timed_out');
  });

  it('a cancel that loses to an accepted result answers 410 work_item_closed with meta.state "completed"', async () => {
    const conversation = id('conv');
    await open(conversation);
    const item = (await register(conversation)).body;
    const token = item.callback.headers[CONTRACT_HEADERS.callbackToken];
    const accepted = await postCallback(ingress.service.url, item.work_item_id, token, { result: 'done' });
    expect(accepted.status).toBe(202);
    const late = await cancel(item.work_item_id);
    expectError(late, 410, ERROR_CODE.work_item_closed);
    expect(late.body.errors[0].meta.state).toBe('completed');
    const read = await get(item.work_item_id);
    expectResult(read, 200);
    expect(read.body.state).toBe('completed');
  });

  it('ends a conversation idempotently (200), cancelling what is outstanding; 404 for an unknown one', async () => {
    const conversation = id('conv');
    await open(conversation);
    const item = (await register(conversation)).body;
    const ended = await end(conversation);
    expectResult(ended, 200);
    expect(ended.body).toMatchObject({ state: 'ended', cancelled_work_items: 1 });
    const again = await end(conversation);
    expectResult(again, 200);
    expect(again.body).toEqual(ended.body);
    expect((await get(item.work_item_id)).body.state).toBe('cancelled');
    expectError(await register(conversation), 410, ERROR_CODE.conversation_ended);
    expectError(await end(id('missing')), 404, ERROR_CODE.not_found);
  });

  it('creates (201) and revokes (200) tenant API keys, shown once; 400 for a malformed tenant, 404 for an unknown key', async () => {
    const created = await createKey('t1');
    expectResult(created, 201);
    expect(created.body.api_key).toMatch(/^bck_[A-Za-z0-9_-]{43}$/);
    expect(created.body.key_id).toMatch(/^key_/);
    const revoked = await revokeKey(created.body.key_id);
    expectResult(revoked, 200);
    expect(revoked.body.state).toBe('revoked');
    expect(JSON.stringify(revoked.body)).not.toContain('bck_');
    expectError(await revokeKey(UNKNOWN_KEY), 404, ERROR_CODE.not_found);
    for (const tenant of ['has space', '-leading-dash', 'x'.repeat(129), 42, undefined]) {
      const refused = await createKey(tenant);
      expectError(refused, 400, ERROR_CODE.invalid_request);
      expect(refused.body.errors[0].source.pointer).toBe('/tenant_id');
    }
  });
});

/** The NATS API carries path parameters in the body. */
function pathParams(url: string): Record<string, string> {
  const [, collection, idValue] = url.split('/');
  if (!idValue) return {};
  const field = { conversations: 'conversation_id', 'work-items': 'work_item_id', 'api-keys': 'key_id' }[collection];
  return field ? { [field]: idValue } : {};
}
