import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { API_SUBJECTS } from '@backchannel/contracts';
import { ManualClock, type NatsServerHandle } from '@backchannel/testing';
import { TokenAuthorityModule } from '../src/token-authority.module.js';
import { TOKEN_AUTHORITY } from '../src/token-authority.service-definition.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { NatsApiClient } from '../../../test/support/nats-client.js';

/**
 * Every platform operation of CONTRACT.md §2 and its error codes, over both transports:
 * the same request must give the same result object or the same error code.
 */
type Call = (
  subject: string,
  path: { method: string; url: string },
  body?: unknown,
) => Promise<{ status?: number; body: any }>;

describe.each(['http', 'nats'] as const)('token authority platform API over %s', (transport) => {
  let nats: NatsServerHandle;
  let ta: TestService;
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
    client = await NatsApiClient.connect(nats.url);
    call = async (subject, path, body) => {
      if (transport === 'nats')
        return { body: await client.request(subject, { ...pathParams(path.url), ...(body as object) }) };
      return http(path.method, `${ta.service.url}/internal/v1${path.url}`, { internal: true, body });
    };
  });

  afterAll(async () => {
    await client?.close();
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
  const codeOf = (answer: { body: any }) => answer.body?.errors?.[0]?.code;

  it('opens a conversation, idempotently, and refuses conflicts and ended ones', async () => {
    const conversation = id('conv');
    const opened = await open(conversation, 't1', { metadata: { channel: 'voice' } });
    expect(opened.body).toMatchObject({ conversation_id: conversation, tenant_id: 't1', state: 'active' });
    expect(opened.body.opened_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await open(conversation)).body).toEqual(opened.body);
    expect(codeOf(await open(conversation, 't2'))).toBe('conversation_conflict');
    await end(conversation);
    expect(codeOf(await open(conversation))).toBe('conversation_ended');
  });

  it('rejects malformed input with invalid_request and a pointer, changing nothing', async () => {
    const bad = await open('has space', 't1');
    expect(codeOf(bad)).toBe('invalid_request');
    expect(bad.body.errors[0].source.pointer).toBe('/conversation_id');
    expect(codeOf(await open(id('conv'), 't1', { metadata: { big: 'x'.repeat(5000) } }))).toBe('invalid_request');
    const conversation = id('conv');
    await open(conversation);
    const badTimeout = await register(conversation, { timeout_ms: 999 });
    expect(badTimeout.body.errors[0].source.pointer).toBe('/timeout_ms');
    expect(codeOf(await register(conversation, { kind: 'robot' }))).toBe('invalid_request');
    expect(codeOf(await register(conversation, { surprise: true }))).toBe('invalid_request');
    expect((await register(conversation)).body.sequence).toBe(1);
  });

  it('registers work items with gap-free sequences, deadlines and callback blocks', async () => {
    const conversation = id('conv');
    await open(conversation);
    const first = await register(conversation, { timeout_ms: 60_000, name: 'lookup', delivery: 'interrupt' });
    const second = await register(conversation, { kind: 'llm', ordered: false });
    expect([first.body.sequence, second.body.sequence]).toEqual([1, 2]);
    expect(first.body.work_item_id).toMatch(/^wi_[0-9A-Z]{26}$/);
    expect(Date.parse(first.body.expires_at) - Date.now()).toBeGreaterThan(55_000);
    expect(first.body.callback).toMatchObject({
      method: 'POST',
      url: expect.stringContaining(`/api/v1/webhooks/${first.body.work_item_id}`),
    });
    const read = await get(first.body.work_item_id);
    expect(read.body).toMatchObject({
      state: 'pending',
      sequence: 1,
      kind: 'tool',
      name: 'lookup',
      delivery: 'interrupt',
    });
    expect(JSON.stringify(read.body)).not.toContain('cbt_');
    expect(codeOf(await register(id('missing')))).toBe('not_found');
  });

  it('returns the same work item and token for a retried idempotency_key', async () => {
    const conversation = id('conv');
    await open(conversation);
    const first = await register(conversation, { idempotency_key: 'retry-me' });
    const retry = await register(conversation, { idempotency_key: 'retry-me' });
    expect(retry.body).toEqual(first.body);
    const other = await register(conversation, { idempotency_key: 'another' });
    expect(other.body.sequence).toBe(2);
  });

  it('cancels once, answers a repeated cancel the same, refuses cancelling a finished item', async () => {
    const conversation = id('conv');
    await open(conversation);
    const item = (await register(conversation)).body;
    const cancelled = await cancel(item.work_item_id);
    expect(cancelled.body.state).toBe('cancelled');
    expect((await cancel(item.work_item_id)).body.state).toBe('cancelled');
    expect(codeOf(await cancel('wi_01ARZ3NDEKTSV4RRFFQ69G5FAV'))).toBe('not_found');
    expect(codeOf(await cancel('not-an-id'))).toBe('invalid_request');
    const timedOut = (await register(conversation, { timeout_ms: 1_000 })).body;
    clock.advance(1_000);
    const late = await cancel(timedOut.work_item_id);
    expect(codeOf(late)).toBe('work_item_closed');
    expect(late.body.errors[0].meta.state).toBe('timed_out');
  });

  it('ends a conversation idempotently, cancelling what is outstanding', async () => {
    const conversation = id('conv');
    await open(conversation);
    const item = (await register(conversation)).body;
    const ended = await end(conversation);
    expect(ended.body).toMatchObject({ state: 'ended', cancelled_work_items: 1 });
    expect((await end(conversation)).body).toEqual(ended.body);
    expect((await get(item.work_item_id)).body.state).toBe('cancelled');
    expect(codeOf(await register(conversation))).toBe('conversation_ended');
    expect(codeOf(await end(id('missing')))).toBe('not_found');
  });

  it('creates and revokes tenant API keys, shown once', async () => {
    const created = await call(API_SUBJECTS.apiKeysCreate, { method: 'POST', url: '/api-keys' }, { tenant_id: 't1' });
    expect(created.body.api_key).toMatch(/^bck_[A-Za-z0-9_-]{43}$/);
    expect(created.body.key_id).toMatch(/^key_/);
    const revoked = await call(API_SUBJECTS.apiKeysRevoke, {
      method: 'POST',
      url: `/api-keys/${created.body.key_id}/revoke`,
    });
    expect(revoked.body.state).toBe('revoked');
    expect(JSON.stringify(revoked.body)).not.toContain('bck_');
    const unknown = await call(API_SUBJECTS.apiKeysRevoke, {
      method: 'POST',
      url: '/api-keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV/revoke',
    });
    expect(codeOf(unknown)).toBe('not_found');
  });
});

/** The NATS API carries path parameters in the body. */
function pathParams(url: string): Record<string, string> {
  const [, collection, idValue] = url.split('/');
  if (!idValue) return {};
  const field = { conversations: 'conversation_id', 'work-items': 'work_item_id', 'api-keys': 'key_id' }[collection];
  return field ? { [field]: idValue } : {};
}
