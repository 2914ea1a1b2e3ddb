import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TOKEN_AUTHORITY } from '../src/token-authority.service-definition.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import type { NatsServerHandle } from '@backchannel/testing';

describe('token authority: conversations over HTTP', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let base: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    ta = await startTestService(TOKEN_AUTHORITY, nats);
    base = `${ta.service.url}/internal/v1`;
  });

  afterAll(async () => {
    await ta?.service.stop();
    await nats?.cleanup();
  });

  it('opens, reopens idempotently, refuses another tenant, ends', async () => {
    const opened = await http('POST', `${base}/conversations`, {
      internal: true,
      body: { conversation_id: 'c:1', tenant_id: 't1' },
    });
    expect(opened.status).toBe(201);
    expect(opened.body).toMatchObject({ conversation_id: 'c:1', tenant_id: 't1', state: 'active' });

    const again = await http('POST', `${base}/conversations`, {
      internal: true,
      body: { conversation_id: 'c:1', tenant_id: 't1' },
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(opened.body);

    const conflict = await http('POST', `${base}/conversations`, {
      internal: true,
      body: { conversation_id: 'c:1', tenant_id: 't2' },
    });
    expect(conflict.status).toBe(409);
    expect(conflict.body.errors[0].code).toBe('conversation_conflict');

    const registered = await http('POST', `${base}/work-items`, {
      internal: true,
      body: { conversation_id: 'c:1', kind: 'tool' },
    });
    expect(registered.status).toBe(201);
    expect(registered.body.sequence).toBe(1);
    expect(registered.body.callback.headers['x-callback-token']).toMatch(/^cbt_[A-Za-z0-9_-]{43}$/);

    const ended = await http('POST', `${base}/conversations/c:1/end`, { internal: true });
    expect(ended.status).toBe(200);
    expect(ended.body).toMatchObject({ state: 'ended', cancelled_work_items: 1 });

    const item = await http('GET', `${base}/work-items/${registered.body.work_item_id}`, { internal: true });
    expect(item.body.state).toBe('cancelled');

    const reopened = await http('POST', `${base}/conversations`, {
      internal: true,
      body: { conversation_id: 'c:1', tenant_id: 't1' },
    });
    expect(reopened.status).toBe(410);
  });

  it('refuses requests without the internal token', async () => {
    const denied = await http('POST', `${base}/conversations`, { body: { conversation_id: 'c2', tenant_id: 't1' } });
    expect(denied.status).toBe(401);
    expect(denied.body.errors[0].code).toBe('unauthorized');
  });
});
