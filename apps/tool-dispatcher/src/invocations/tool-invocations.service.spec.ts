import { describe, expect, it } from '@jest/globals';
import { ApiError } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import { PendingDispatches } from '../cancel-notices/pending-dispatches.js';
import { HostResolver } from '../outbound/host-resolver.js';
import { ToolPostFailure, type ToolAnswer, type ToolPost } from '../outbound/tool-http-client.js';
import { ToolUrlGuard } from '../outbound/tool-url-guard.js';
import { FakeEnds, FakeRegistrar, FakeToolHttp, REGISTRATION, SILENT_LOGGER, testMetrics } from '../../test/fakes.js';
import type { DispatchEndResult } from './dispatch-ends.js';
import type { Invocation } from './invocation.js';
import { ToolInvocationsService } from './tool-invocations.service.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

class NoResolver extends HostResolver {
  resolve(): Promise<never> {
    return Promise.reject(new Error('no resolution expected'));
  }
}

function invocation(tool: Partial<Invocation['tool']> = {}): Invocation {
  return {
    conversationId: 'conv-1',
    callControlId: 'call-1',
    tool: {
      url: 'http://tool.test/x',
      mode: 'async',
      timeoutMs: 30_000,
      ackTimeoutMs: 500,
      signingSecret: SECRET,
      ...tool,
    },
    arguments: { q: 1 },
    name: 'lookup',
    ordered: false,
    delivery: 'silent',
  };
}

function setup(script: (post: ToolPost, index: number) => Promise<ToolAnswer>, endResult?: DispatchEndResult) {
  const http = new FakeToolHttp(script);
  const registrar = new FakeRegistrar();
  const ends = new FakeEnds(endResult);
  const pending = new PendingDispatches();
  const { metrics, dispatch } = testMetrics();
  const guard = new ToolUrlGuard(new NoResolver(), true);
  const sut = new ToolInvocationsService(guard, registrar, http, ends, pending, dispatch, new Clock(), SILENT_LOGGER);
  return { sut, http, registrar, ends, pending, metrics };
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

const status = (code: number) => (): Promise<ToolAnswer> => Promise.resolve({ status: code });

describe('ToolInvocationsService, async mode', () => {
  it('registers with the invocation options and an idempotency key, POSTs once, answers 202 pending, holds the item', async () => {
    const { sut, http, registrar, pending } = setup(status(202));
    const answer = await sut.invoke(invocation(), TRACE_ID);

    expect(answer).toEqual({
      status: 202,
      body: { work_item_id: REGISTRATION.work_item_id, sequence: 4, state: 'pending' },
    });
    expect(registrar.requests).toEqual([
      {
        conversation_id: 'conv-1',
        kind: 'tool',
        name: 'lookup',
        timeout_ms: 30_000,
        ordered: false,
        delivery: 'silent',
        idempotency_key: expect.stringMatching(/^tool-invocation\.[0-9A-Z]{26}$/),
      },
    ]);
    expect(http.posts).toHaveLength(1);
    expect(http.posts[0]).toMatchObject({ url: 'http://tool.test/x', timeoutMs: 500, readBody: false });
    expect(JSON.parse(http.posts[0].body).callback).toEqual(REGISTRATION.callback);
    expect(pending.take(REGISTRATION.work_item_id)).toMatchObject({
      callControlId: 'call-1',
      signingSecret: SECRET,
      traceId: TRACE_ID,
    });
  });

  it('retries until acknowledged, with one webhook-id and one body', async () => {
    const { sut, http } = setup((_post, index) =>
      index === 0
        ? Promise.reject(new ToolPostFailure('timeout', 'slow'))
        : Promise.resolve({ status: index === 1 ? 500 : 200 }),
    );
    expect((await sut.invoke(invocation(), TRACE_ID)).status).toBe(202);
    expect(http.posts).toHaveLength(3);
    expect(new Set(http.posts.map((post) => post.headers['webhook-id'])).size).toBe(1);
    expect(new Set(http.posts.map((post) => post.body)).size).toBe(1);
  });

  it('after 3 failed attempts records the failure by dispatch and answers 502 tool_unreachable with the item id', async () => {
    const { sut, http, ends, pending, metrics } = setup(status(503));
    const error = await rejection(sut.invoke(invocation(), TRACE_ID));

    expect(error.code).toBe('tool_unreachable');
    expect(error.meta).toEqual({ work_item_id: REGISTRATION.work_item_id });
    expect(http.posts).toHaveLength(3);
    expect(ends.recorded).toEqual([
      {
        conversationId: 'conv-1',
        workItemId: REGISTRATION.work_item_id,
        errors: [expect.objectContaining({ code: 'tool_unreachable', title: 'Tool unreachable' })],
        traceId: TRACE_ID,
      },
    ]);
    expect(pending.size).toBe(0);
    expect((await metrics.render()).body).toMatch(
      /backchannel_dispatch_requests_total\{mode="async",outcome="unreachable"[^}]*\} 1/,
    );
  });

  it('answers 202 with the winning state when another end got there first', async () => {
    const { sut } = setup(status(500), { won: false, state: 'completed' });
    expect(await sut.invoke(invocation(), TRACE_ID)).toEqual({
      status: 202,
      body: { work_item_id: REGISTRATION.work_item_id, sequence: 4, state: 'completed' },
    });
  });

  it('does not retry a refused address, nor an item that ended meanwhile', async () => {
    const blocked = setup(() => Promise.reject(new ToolPostFailure('blocked', 'refused')));
    expect((await rejection(blocked.sut.invoke(invocation(), TRACE_ID))).code).toBe('tool_unreachable');
    expect(blocked.http.posts).toHaveLength(1);

    const ended = setup(() => {
      ended.pending.forget(REGISTRATION.work_item_id); // as the end follower does when the item ends
      return Promise.resolve({ status: 500 });
    });
    await rejection(ended.sut.invoke(invocation(), TRACE_ID));
    expect(ended.http.posts).toHaveLength(1);
  });

  it("passes the token authority's errors through and sends nothing", async () => {
    const { sut, http } = setup(status(202));
    const registrar = new FakeRegistrar(() => Promise.reject(new ApiError('conversation_ended', 'ended')));
    Object.assign(sut, { registrar });
    expect((await rejection(sut.invoke(invocation(), TRACE_ID))).code).toBe('conversation_ended');
    expect(http.posts).toHaveLength(0);
  });
});

describe('ToolInvocationsService, sync mode', () => {
  const sync = { mode: 'sync' as const, timeoutMs: 1_500 };

  it('POSTs once with timeout_ms and returns the result', async () => {
    const { sut, http, registrar } = setup(() => Promise.resolve({ status: 200, body: '{"result":{"ok":true}}' }));
    expect(await sut.invoke(invocation(sync), TRACE_ID)).toEqual({ status: 200, body: { result: { ok: true } } });
    expect(http.posts).toHaveLength(1);
    expect(http.posts[0]).toMatchObject({ timeoutMs: 1_500, readBody: true });
    expect(JSON.parse(http.posts[0].body)).toEqual({
      type: 'tool.invocation',
      conversation_id: 'conv-1',
      arguments: { q: 1 },
    });
    expect(registrar.requests).toHaveLength(0);
  });

  it.each([
    ['timeout', 'tool_timeout'],
    ['network', 'tool_unreachable'],
    ['too_large', 'tool_failed'],
    ['blocked', 'invalid_request'],
  ] as const)('a %s failure is %s, never retried', async (kind, code) => {
    const { sut, http } = setup(() => Promise.reject(new ToolPostFailure(kind, kind)));
    const error = await rejection(sut.invoke(invocation(sync), TRACE_ID));
    expect(error.code).toBe(code);
    if (kind === 'blocked') expect(error.pointer).toBe('/tool/url');
    expect(http.posts).toHaveLength(1);
  });
});
