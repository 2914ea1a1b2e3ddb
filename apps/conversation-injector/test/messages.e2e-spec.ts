import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { API_SUBJECTS, MAX_PAGE_BYTES, type InjectedMessage } from '@backchannel/contracts';
import { eventually } from '@backchannel/testing';
import { http } from '../../../test/support/mesh.js';
import { InjectorHarness } from './injector-harness.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

describe('conversation injector: transcript, Add Messages and the tenant API (CONTRACT.md §4)', () => {
  let h: InjectorHarness;
  let keyA: string;
  let keyB: string;

  beforeAll(async () => {
    h = await InjectorHarness.start();
    keyA = (await h.apiKey('tenant-a')).api_key;
    keyB = (await h.apiKey('tenant-b')).api_key;
  });

  afterAll(async () => {
    await h?.stop();
  });

  async function conversation(tenant = 'tenant-a'): Promise<string> {
    const id = h.id();
    await h.platform.openConversation(id, tenant);
    return id;
  }

  const messagesPath = (id: string) => `/api/v1/conversations/${id}/messages`;

  it('is ready once its release consumers run', async () => {
    const ready = await http('GET', `${h.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body.checks.release_consumers).toBe(true);
  });

  it('injects releases in order at positions 1..n, publishes each live, and pages with after/limit', async () => {
    const id = await conversation();
    const live = await h.live(id);
    for (let index = 1; index <= 5; index++) await h.release(id, index);

    await eventually(() => expect(live.messages.map((m) => m.position)).toEqual([1, 2, 3, 4, 5]));
    const first = live.messages[0];
    expect(first).toEqual({
      position: 1,
      conversation_id: id,
      role: 'tool',
      source: { type: 'callback', work_item_id: expect.stringMatching(/^wi_/), sequence: 1 },
      result: { n: 1 },
      delivery: 'when_idle',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      injected_at: expect.any(String),
    });
    expect(first).not.toHaveProperty('applied_release_index');

    const page = await h.api('GET', `${messagesPath(id)}?after=1&limit=2`, { key: keyA });
    expect(page.status).toBe(200);
    expect(page.body.messages.map((m: InjectedMessage) => m.position)).toEqual([2, 3]);
    expect(page.body.next_after).toBe(3);
    expect(page.body.messages).toEqual(live.messages.slice(1, 3));

    const all = await h.api('GET', messagesPath(id), { key: keyA });
    expect(all.body.messages.map((m: InjectedMessage) => (m.result as { n: number }).n)).toEqual([1, 2, 3, 4, 5]);
    expect(all.body.next_after).toBe(5);

    const past = await h.api('GET', `${messagesPath(id)}?after=5`, { key: keyA });
    expect(past.body).toEqual({ messages: [], next_after: null });
    live.stop();
  });

  it('adds messages at once in the order given (202), between releases, carrying the trace', async () => {
    const id = await conversation();
    await h.release(id, 1);
    await eventually(async () => expect((await h.transcript(id, keyA)).length).toBe(1));

    const added = await h.api('POST', messagesPath(id), {
      key: keyA,
      headers: { traceparent: TRACEPARENT },
      body: {
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'and kind' },
        ],
      },
    });
    expect(added.status).toBe(202);
    expect(added.body.messages).toEqual([
      {
        position: 2,
        conversation_id: id,
        role: 'system',
        source: { type: 'api' },
        content: 'be brief',
        delivery: 'when_idle',
        trace_id: TRACE_ID,
        injected_at: expect.any(String),
      },
      expect.objectContaining({ position: 3, role: 'user', content: 'and kind', trace_id: TRACE_ID }),
    ]);

    // The applied release index travels through API appends: release 2 is the next, release 1 a repeat.
    await h.release(id, 1, {}, 'repeat-of-1');
    await h.release(id, 2);
    await eventually(async () => expect((await h.transcript(id, keyA)).map((m) => m.position)).toEqual([1, 2, 3, 4]));
    const transcript = await h.transcript(id, keyA);
    expect(transcript.map((m) => m.source.type)).toEqual(['callback', 'api', 'api', 'callback']);
    expect(transcript[3].result).toEqual({ n: 2 });

    const untraced = await h.api('POST', messagesPath(id), {
      key: keyA,
      headers: { traceparent: 'not-a-traceparent' },
      body: { messages: [{ role: 'user', content: 'x' }] },
    });
    expect(untraced.body.messages[0].trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(untraced.body.messages[0].trace_id).not.toBe(TRACE_ID);
  });

  it('answers an Idempotency-Key retry with 200 and the same messages, and runs concurrent duplicates once', async () => {
    const id = await conversation();
    const body = {
      messages: [
        { role: 'user', content: 'once' },
        { role: 'system', content: 'only once' },
      ],
    };
    const first = await h.api('POST', messagesPath(id), { key: keyA, body, headers: { 'idempotency-key': 'k-1' } });
    expect(first.status).toBe(202);
    const retry = await h.api('POST', messagesPath(id), { key: keyA, body, headers: { 'idempotency-key': 'k-1' } });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);

    const racing = await Promise.all(
      Array.from({ length: 5 }, () =>
        h.api('POST', messagesPath(id), { key: keyA, body, headers: { 'idempotency-key': 'k-2' } }),
      ),
    );
    expect(racing.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 202]);
    for (const answer of racing) expect(answer.body).toEqual(racing[0].body);

    const transcript = await h.transcript(id, keyA);
    expect(transcript.map((m) => m.position)).toEqual([1, 2, 3, 4]);
    expect(racing[0].body.messages.map((m: InjectedMessage) => m.position)).toEqual([3, 4]);
    expect(JSON.stringify(transcript)).not.toContain('idempotency_key_hash');

    // The same key in another conversation is another request.
    const other = await conversation();
    const elsewhere = await h.api('POST', messagesPath(other), {
      key: keyA,
      body,
      headers: { 'idempotency-key': 'k-1' },
    });
    expect(elsewhere.status).toBe(202);
    expect(elsewhere.body.messages[0].position).toBe(1);
  });

  it('validates the body, the headers and the query with pointers, injecting nothing', async () => {
    const id = await conversation();
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      h.api('POST', messagesPath(id), { key: keyA, body, headers });
    const cases: [unknown, string][] = [
      [{}, '/messages'],
      [{ messages: [] }, '/messages'],
      [{ messages: Array.from({ length: 21 }, () => ({ role: 'user', content: 'x' })) }, '/messages'],
      [{ messages: [{ role: 'assistant', content: 'x' }] }, '/messages/0/role'],
      [
        {
          messages: [
            { role: 'user', content: 'ok' },
            { role: 'user', content: '' },
          ],
        },
        '/messages/1/content',
      ],
      [{ messages: [{ role: 'user', content: 'x'.repeat(32_769) }] }, '/messages/0/content'],
      [{ messages: [{ role: 'user', content: 'x', extra: 1 }] }, '/messages/0/extra'],
      [{ messages: [{ role: 'user', content: 'x' }], more: true }, '/more'],
    ];
    for (const [body, pointer] of cases) {
      const answer = await post(body);
      expect({
        status: answer.status,
        code: answer.body.errors[0].code,
        pointer: answer.body.errors[0].source?.pointer,
      }).toEqual({
        status: 400,
        code: 'invalid_request',
        pointer,
      });
    }
    const maxContent = await post({ messages: [{ role: 'user', content: 'x'.repeat(32_768) }] });
    expect(maxContent.status).toBe(202);

    const longKey = await post({ messages: [{ role: 'user', content: 'x' }] }, { 'idempotency-key': 'k'.repeat(129) });
    expect(longKey.status).toBe(400);
    expect(longKey.body.errors[0].source).toEqual({ header: 'idempotency-key' });

    const badId = await h.api('POST', '/api/v1/conversations/-bad/messages', {
      key: keyA,
      body: { messages: [{ role: 'user', content: 'x' }] },
    });
    expect(badId.status).toBe(400);
    expect(badId.body.errors[0].code).toBe('invalid_request');

    for (const [query, parameter] of [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=ten', 'limit'],
      ['after=-1', 'after'],
      ['after=1.5', 'after'],
    ]) {
      const answer = await h.api('GET', `${messagesPath(id)}?${query}`, { key: keyA });
      expect(answer.status).toBe(400);
      expect(answer.body.errors[0]).toMatchObject({ code: 'invalid_request', source: { parameter } });
    }
    expect((await h.api('GET', `${messagesPath(id)}?limit=1000`, { key: keyA })).status).toBe(200);
    expect((await h.transcript(id, keyA)).length).toBe(1);
  });

  it('stops a page before it passes 512 KiB of JSON', async () => {
    const id = await conversation();
    const big = { role: 'user', content: 'y'.repeat(32_000) };
    for (let i = 0; i < 2; i++) {
      expect(
        (await h.api('POST', messagesPath(id), { key: keyA, body: { messages: Array(10).fill(big) } })).status,
      ).toBe(202);
    }
    const page = await h.api('GET', `${messagesPath(id)}?limit=1000`, { key: keyA });
    expect(page.status).toBe(200);
    const bytes = Buffer.byteLength(JSON.stringify(page.body));
    expect(bytes).toBeLessThanOrEqual(MAX_PAGE_BYTES);
    expect(page.body.messages.length).toBeGreaterThan(10);
    expect(page.body.messages.length).toBeLessThan(20);
    const rest = await h.api('GET', `${messagesPath(id)}?after=${page.body.next_after}&limit=1000`, { key: keyA });
    expect(page.body.messages.length + rest.body.messages.length).toBe(20);
  });

  it('refuses requests without a valid key (401), and a revoked key within 1 s', async () => {
    const id = await conversation();
    const ok = { messages: [{ role: 'user', content: 'x' }] };
    const refused = await Promise.all([
      h.api('GET', messagesPath(id)),
      h.api('GET', messagesPath(id), { headers: { authorization: keyA } }),
      h.api('GET', messagesPath(id), { key: 'bck_short' }),
      h.api('GET', messagesPath(id), { key: `bck_${'A'.repeat(43)}` }),
      h.api('POST', messagesPath(id), { key: `bck_${'A'.repeat(43)}`, body: ok }),
      h.api('GET', `/api/v1/conversations/${id}/events`, { key: `bck_${'B'.repeat(43)}` }),
    ]);
    for (const answer of refused) {
      expect(answer.status).toBe(401);
      expect(answer.body.errors[0].code).toBe('unauthorized');
      expect(JSON.stringify(answer.body)).not.toContain('bck_');
    }

    const { api_key, key_id } = await h.apiKey('tenant-a');
    expect((await h.api('GET', messagesPath(id), { key: api_key })).status).toBe(200);
    await h.revoke(key_id);
    const revokedAt = Date.now();
    await eventually(async () => expect((await h.api('GET', messagesPath(id), { key: api_key })).status).toBe(401), {
      timeoutMs: 2_000,
    });
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    expect((await h.api('POST', messagesPath(id), { key: api_key, body: ok })).status).toBe(401);
  });

  it("answers another tenant's conversation exactly like a missing one (404), on every route", async () => {
    const id = await conversation('tenant-a');
    await h.api('POST', messagesPath(id), { key: keyA, body: { messages: [{ role: 'user', content: 'secret' }] } });
    const missing = h.id('missing');
    const routes = (conv: string) => [
      h.api('POST', messagesPath(conv), { key: keyB, body: { messages: [{ role: 'user', content: 'x' }] } }),
      h.api('GET', messagesPath(conv), { key: keyB }),
      h.api('GET', `/api/v1/conversations/${conv}/events`, { key: keyB }),
    ];
    const foreign = await Promise.all(routes(id));
    const absent = await Promise.all(routes(missing));
    for (let i = 0; i < foreign.length; i++) {
      expect(foreign[i].status).toBe(404);
      expect(stripMeta(foreign[i].body)).toEqual(stripMeta(absent[i].body));
      expect(JSON.stringify(foreign[i].body)).not.toContain('secret');
    }
    expect(stripMeta(foreign[0].body)).toEqual({
      errors: [{ code: 'not_found', title: 'Not found', detail: 'no such conversation' }],
    });
    expect((await h.transcript(id, keyA)).length).toBe(1);
  });

  it('refuses writes to an ended conversation (410) but still reads it and injects held releases', async () => {
    const id = await conversation();
    await h.api('POST', messagesPath(id), { key: keyA, body: { messages: [{ role: 'user', content: 'before' }] } });
    await h.platform.endConversation(id);
    const refused = await h.api('POST', messagesPath(id), {
      key: keyA,
      body: { messages: [{ role: 'user', content: 'after' }] },
    });
    expect(refused.status).toBe(410);
    expect(refused.body.errors[0].code).toBe('conversation_ended');

    await h.release(id, 1);
    await eventually(async () => expect((await h.transcript(id, keyA)).map((m) => m.role)).toEqual(['user', 'tool']));
  });

  it('serves bc.v1.conversations.messages.list over NATS with the same pages', async () => {
    const id = await conversation();
    await h.api('POST', messagesPath(id), {
      key: keyA,
      body: { messages: ['a', 'b', 'c'].map((content) => ({ role: 'user', content })) },
    });
    const request = async (body: unknown) =>
      (await h.nc.request(API_SUBJECTS.messagesList, JSON.stringify(body), { timeout: 5_000 })).json<any>();
    const page = await request({ conversation_id: id, after: 1, limit: 1 });
    expect(page.messages.map((m: InjectedMessage) => m.content)).toEqual(['b']);
    expect(page.next_after).toBe(2);
    expect((await request({ conversation_id: id })).messages).toEqual(await h.transcript(id, keyA));
    const bad = await request({ conversation_id: id, limit: 0 });
    expect(bad.errors[0]).toMatchObject({ code: 'invalid_request', source: { pointer: '/limit' } });
    expect((await request({ conversation_id: h.id('missing') })).errors[0].code).toBe('not_found');
  });

  it('counts what it injects, and never logs an API key', async () => {
    const metrics = await http('GET', `${h.url}/metrics`);
    expect(metrics.body).toMatch(/backchannel_messages_injected_total\{[^}]*source="api"[^}]*\} \d+/);
    expect(metrics.body).toMatch(/backchannel_messages_injected_total\{[^}]*source="callback"[^}]*\} \d+/);
    expect(metrics.body).toMatch(/backchannel_injection_latency_seconds_count\{[^}]*\} \d+/);
    expect(metrics.body).toContain('backchannel_release_redeliveries_total');
    expect(metrics.body).toContain('backchannel_sse_followers');
    const logs = h.injector.logs.lines.join('\n');
    expect(logs).not.toContain(keyA);
    expect(logs).not.toContain(keyB);
  });
});

function stripMeta(body: { errors: { meta?: unknown }[] }): unknown {
  return { errors: body.errors.map(({ meta: _meta, ...rest }) => rest) };
}
