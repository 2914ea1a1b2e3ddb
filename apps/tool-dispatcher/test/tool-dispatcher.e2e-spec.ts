import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { Webhook } from 'standardwebhooks';
import { API_SUBJECTS, BUCKETS, ERROR_CODE, STREAMS, statusOf } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../callback-ingress/src/callback-ingress.service-definition.js';
import { ORDERING_SEQUENCER } from '../../ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../src/tool-dispatcher.service-definition.js';
import {
  startExampleProvider,
  ToolError,
  type ExampleProvider,
} from '../../../examples/provider/src/example-provider.js';
import { http, startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient } from '../../../test/support/platform.js';
import { ReleaseWatcher } from '../../../test/support/releases.js';
import { FakeTool, type ReceivedRequest } from './fake-tool.js';

const SECRET = `whsec_${Buffer.from('backchannel-test-signing-secret!').toString('base64')}`;
const CALL_CONTROL_ID = 'v3:call-control/42';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

describe('tool dispatcher: async and sync invocations, retries, cancel notices', () => {
  let nats: NatsServerHandle;
  let services: TestService[];
  let dispatcherUrl: string;
  let platform: PlatformClient;
  let watcher: ReleaseWatcher;
  let tool: FakeTool;
  let nc: NatsConnection;
  let n = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    const ingress = await startTestService(CALLBACK_INGRESS, nats);
    const ta = await startTestService(TOKEN_AUTHORITY, nats, { PUBLIC_BASE_URL: ingress.service.url });
    const sequencer = await startTestService(ORDERING_SEQUENCER, nats);
    const dispatcher = await startTestService(TOOL_DISPATCHER, nats);
    services = [dispatcher, sequencer, ingress, ta];
    dispatcherUrl = dispatcher.service.url;
    platform = new PlatformClient(ta.service.url);
    watcher = await ReleaseWatcher.start(nats.url);
    tool = await FakeTool.start();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await nc?.close();
    await watcher?.close();
    for (const service of services ?? []) await service.service.stop();
    await tool?.close();
    await nats?.cleanup();
  });

  async function conversation(): Promise<string> {
    const id = `dispatch-${++n}`;
    await platform.openConversation(id);
    return id;
  }

  function invocation(
    conversationId: string,
    url: string,
    tool: Record<string, unknown> = {},
    extra: Record<string, unknown> = {},
  ) {
    return {
      conversation_id: conversationId,
      call_control_id: CALL_CONTROL_ID,
      tool: { url, mode: 'async', signing_secret: SECRET, ...tool },
      arguments: { city: 'Paris', days: 3 },
      name: 'weather',
      ...extra,
    };
  }

  function invoke(body: unknown, headers: Record<string, string> = {}) {
    return http('POST', `${dispatcherUrl}/internal/v1/tool-invocations`, { internal: true, body, headers });
  }

  function verified(request: ReceivedRequest): unknown {
    return new Webhook(SECRET).verify(request.raw, request.headers as Record<string, string>);
  }

  describe('async mode', () => {
    it('registers a work item, POSTs a signed invocation with the call-control id and trace, and answers 202 pending', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 202 }));
      const answer = await invoke(invocation(conversationId, url), { traceparent: TRACEPARENT });

      expect(answer.status).toBe(202);
      expect(answer.body).toEqual({ work_item_id: expect.stringMatching(/^wi_/), sequence: 1, state: 'pending' });
      const [request] = tool.requestsTo(url);
      expect(request.headers['x-call-control-id']).toBe(CALL_CONTROL_ID);
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.headers.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
      expect(verified(request)).toEqual(request.body);
      expect(request.body).toEqual({
        type: 'tool.invocation',
        work_item_id: answer.body.work_item_id,
        conversation_id: conversationId,
        arguments: { city: 'Paris', days: 3 },
        callback: {
          url: `${services[2].service.url}/api/v1/webhooks/${answer.body.work_item_id}`,
          method: 'POST',
          headers: { 'x-callback-token': expect.stringMatching(/^cbt_/) },
        },
      });
      const item = await platform.workItem(answer.body.work_item_id);
      expect(item).toMatchObject({
        state: 'pending',
        kind: 'tool',
        name: 'weather',
        ordered: true,
        delivery: 'when_idle',
      });
    });

    it('serves bc.v1.tools.invoke over NATS, honouring a traceparent header', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 200 }));
      const headers = natsHeaders();
      headers.set('traceparent', TRACEPARENT);
      const reply = await nc.request(API_SUBJECTS.toolsInvoke, JSON.stringify(invocation(conversationId, url)), {
        timeout: 15_000,
        headers,
      });
      expect(reply.json()).toEqual({ work_item_id: expect.stringMatching(/^wi_/), sequence: 1, state: 'pending' });
      expect(tool.requestsTo(url)[0].headers.traceparent).toContain(TRACE_ID);

      const refused = await nc.request(API_SUBJECTS.toolsInvoke, JSON.stringify({ conversation_id: conversationId }), {
        timeout: 15_000,
      });
      expect(refused.json<any>().errors[0]).toMatchObject({
        code: 'invalid_request',
        source: { pointer: '/call_control_id' },
      });
    });

    it('acknowledges three tools whose provider delays its ack by 1 s in parallel, well under 3 s', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 202, delayMs: 1_000 }));
      const started = Date.now();
      const answers = await Promise.all([1, 2, 3].map(() => invoke(invocation(conversationId, url))));
      const elapsedMs = Date.now() - started;

      expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
      expect(answers.map((answer) => answer.body.sequence).sort()).toEqual([1, 2, 3]);
      expect(elapsedMs).toBeLessThan(2_500);
      expect(tool.requestsTo(url)).toHaveLength(3);
    });

    it('retries a provider that fails once, keeping the webhook-id', async () => {
      const conversationId = await conversation();
      const url = tool.route((_request, index) => ({ status: index === 0 ? 503 : 202 }));
      const answer = await invoke(invocation(conversationId, url));

      expect(answer.status).toBe(202);
      const requests = tool.requestsTo(url);
      expect(requests).toHaveLength(2);
      expect(requests[1].headers['webhook-id']).toBe(requests[0].headers['webhook-id']);
      expect(requests[1].raw).toBe(requests[0].raw);
      for (const request of requests) expect(verified(request)).toBeTruthy();
    });

    it('a provider always failing: 502 tool_unreachable, the item fails by dispatch and the error is injected at its place', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 500, body: { oops: true } }));
      const answer = await invoke(invocation(conversationId, url));

      expect(answer.status).toBe(502);
      const workItemId = answer.body.errors[0].meta.work_item_id;
      expect(answer.body.errors[0]).toMatchObject({
        code: 'tool_unreachable',
        meta: { work_item_id: expect.stringMatching(/^wi_/) },
      });
      const requests = tool.requestsTo(url);
      expect(requests).toHaveLength(3);
      expect(new Set(requests.map((request) => request.headers['webhook-id'])).size).toBe(1);
      expect((await platform.workItem(workItemId)).state).toBe('failed');

      const [release] = await eventually(() => {
        const releases = watcher.of(conversationId);
        expect(releases).toHaveLength(1);
        return releases;
      });
      expect(release).toMatchObject({
        role: 'tool',
        source: { type: 'dispatch', work_item_id: workItemId, sequence: 1 },
      });
      expect(release.errors![0].code).toBe('tool_unreachable');
    });

    it('a provider acknowledging later than ack_timeout_ms counts as a failed attempt', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 202, delayMs: 2_000 }));
      const answer = await invoke(invocation(conversationId, url, { ack_timeout_ms: 200 }));

      expect(answer.status).toBe(502);
      expect(answer.body.errors[0].code).toBe('tool_unreachable');
      expect(tool.requestsTo(url)).toHaveLength(3);
    });

    it('passes the token authority errors through: 404 unknown and 410 ended conversations', async () => {
      const url = tool.route(() => ({ status: 202 }));
      const unknown = await invoke(invocation('no-such-conversation', url));
      expect(unknown.status).toBe(404);
      expect(unknown.body.errors[0].code).toBe('not_found');

      const ended = await conversation();
      await platform.endConversation(ended);
      const answer = await invoke(invocation(ended, url));
      expect(answer.status).toBe(410);
      expect(answer.body.errors[0].code).toBe('conversation_ended');
      expect(tool.requestsTo(url)).toHaveLength(0);
    });
  });

  describe('sync mode', () => {
    it('returns the result inline and registers nothing', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 200, body: { result: { temperature_c: 21 } } }));
      const answer = await invoke(invocation(conversationId, url, { mode: 'sync' }), { traceparent: TRACEPARENT });

      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ result: { temperature_c: 21 } });
      const [request] = tool.requestsTo(url);
      expect(request.body).toEqual({
        type: 'tool.invocation',
        conversation_id: conversationId,
        arguments: { city: 'Paris', days: 3 },
      });
      expect(request.headers['x-call-control-id']).toBe(CALL_CONTROL_ID);
      expect(request.headers.traceparent).toContain(TRACE_ID);
      expect(verified(request)).toBeTruthy();
      expect((await platform.register(conversationId)).sequence).toBe(1);
    });

    it('502 tool_failed with the provider errors, or with its status', async () => {
      const conversationId = await conversation();
      const errors = [{ code: 'city_unknown', title: 'Unknown city', detail: 'no such city' }];
      const withErrors = await invoke(
        invocation(
          conversationId,
          tool.route(() => ({ status: 200, body: { errors } })),
          { mode: 'sync' },
        ),
      );
      expect(withErrors.status).toBe(502);
      expect(withErrors.body.errors[0]).toMatchObject({ code: 'tool_failed', meta: { errors } });

      const url = tool.route(() => ({ status: 500, body: 'boom' }));
      const withStatus = await invoke(invocation(conversationId, url, { mode: 'sync' }));
      expect(withStatus.status).toBe(502);
      expect(withStatus.body.errors[0]).toMatchObject({ code: 'tool_failed', meta: { status: 500 } });
      expect(tool.requestsTo(url)).toHaveLength(1);
    });

    it('504 tool_timeout when the provider does not answer within timeout_ms, without retrying', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 200, body: { result: 'too late' }, delayMs: 4_000 }));
      const started = Date.now();
      const answer = await invoke(invocation(conversationId, url, { mode: 'sync', timeout_ms: 1_000 }));

      expect(answer.status).toBe(504);
      expect(answer.body.errors[0].code).toBe('tool_timeout');
      expect(Date.now() - started).toBeLessThan(3_500);
      expect(tool.requestsTo(url)).toHaveLength(1);
    });
  });

  describe('cancel notices', () => {
    async function dispatched(tool_: Record<string, unknown> = {}) {
      const conversationId = await conversation();
      const url = tool.route((request) => ({ status: request.body?.type === 'tool.invocation' ? 202 : 200 }));
      const answer = await invoke(invocation(conversationId, url, tool_));
      expect(answer.status).toBe(202);
      return { conversationId, url, workItemId: answer.body.work_item_id as string };
    }

    async function noticeTo(url: string): Promise<ReceivedRequest> {
      return eventually(
        () => {
          const notice = tool.requestsTo(url).find((request) => request.body?.type === 'work_item.cancelled');
          expect(notice).toBeDefined();
          return notice!;
        },
        { timeoutMs: 10_000 },
      );
    }

    it('cancelling a dispatched item sends a signed notice with reason cancelled', async () => {
      const { conversationId, url, workItemId } = await dispatched();
      expect((await platform.cancel(workItemId)).status).toBe(200);

      const notice = await noticeTo(url);
      expect(notice.body).toEqual({
        type: 'work_item.cancelled',
        work_item_id: workItemId,
        conversation_id: conversationId,
        reason: 'cancelled',
      });
      expect(notice.headers['x-call-control-id']).toBe(CALL_CONTROL_ID);
      expect(verified(notice)).toEqual(notice.body);
      expect(notice.headers['webhook-id']).not.toBe(tool.requestsTo(url)[0].headers['webhook-id']);
    });

    it('an item timing out sends a notice with reason timed_out', async () => {
      const { url, workItemId } = await dispatched({ timeout_ms: 1_000 });
      const notice = await noticeTo(url);
      expect(notice.body).toMatchObject({ work_item_id: workItemId, reason: 'timed_out' });
      expect(verified(notice)).toBeTruthy();
    });

    it('its conversation ending sends a notice with reason conversation_ended', async () => {
      const { conversationId, url, workItemId } = await dispatched();
      await platform.endConversation(conversationId);
      const notice = await noticeTo(url);
      expect(notice.body).toMatchObject({ work_item_id: workItemId, reason: 'conversation_ended' });
      expect(verified(notice)).toBeTruthy();
    });

    it('an unsigned invocation gets an unsigned notice', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 202 }));
      const answer = await invoke(invocation(conversationId, url, { signing_secret: undefined }));
      expect(tool.requestsTo(url)[0].headers['webhook-signature']).toBeUndefined();
      await platform.cancel(answer.body.work_item_id);
      const notice = await noticeTo(url);
      expect(notice.headers['webhook-signature']).toBeUndefined();
      expect(notice.headers['x-call-control-id']).toBe(CALL_CONTROL_ID);
    });
  });

  describe('the whole loop with the example provider', () => {
    let provider: ExampleProvider;
    const aborted: string[] = [];

    beforeAll(async () => {
      provider = await startExampleProvider({
        port: 0,
        signingSecret: SECRET,
        log: () => undefined,
        work: async (args, context) => {
          if (args.wait_for_cancel) {
            await new Promise((_, reject) =>
              context.signal.addEventListener('abort', () => {
                aborted.push(context.workItemId!);
                reject(new ToolError('cancelled', 'cancelled'));
              }),
            );
          }
          if (args.fail) throw new ToolError('bad_input', 'a must be positive', false);
          await context.progress('adding', 50);
          return { sum: Number(args.a) + Number(args.b), call: context.callControlId };
        },
      });
    });

    afterAll(async () => {
      await provider?.close();
    });

    it('the provider acknowledges, works, posts the result back, and the result is released', async () => {
      const conversationId = await conversation();
      const answer = await invoke(
        { ...invocation(conversationId, provider.url), arguments: { a: 2, b: 3 } },
        { traceparent: TRACEPARENT },
      );
      expect(answer.status).toBe(202);

      const released = await eventually(() => {
        const releases = watcher.of(conversationId);
        expect(releases.filter((release) => release.source.type === 'callback')).toHaveLength(1);
        return releases;
      });
      expect(released.map((release) => release.source.type)).toEqual(['progress', 'callback']);
      expect(released[1]).toMatchObject({
        role: 'tool',
        result: { sum: 5, call: CALL_CONTROL_ID },
        trace_id: TRACE_ID,
        source: { work_item_id: answer.body.work_item_id, sequence: 1 },
      });
      expect((await platform.workItem(answer.body.work_item_id)).state).toBe('completed');
    });

    it("the provider's errors are released as the conversation's error", async () => {
      const conversationId = await conversation();
      await invoke({ ...invocation(conversationId, provider.url), arguments: { fail: true } });
      const [release] = await eventually(() => {
        const releases = watcher.of(conversationId).filter((release) => release.source.type === 'callback');
        expect(releases).toHaveLength(1);
        return releases;
      });
      expect(release.errors![0]).toMatchObject({ code: 'bad_input', meta: { retryable: false } });
    });

    it('a cancel notice aborts the provider work', async () => {
      const conversationId = await conversation();
      const answer = await invoke({
        ...invocation(conversationId, provider.url),
        arguments: { wait_for_cancel: true },
      });
      await platform.cancel(answer.body.work_item_id);
      await eventually(() => expect(aborted).toContain(answer.body.work_item_id));
    });

    it('the provider refuses a request whose signature does not verify', async () => {
      const body = JSON.stringify({ type: 'tool.invocation', conversation_id: 'x', arguments: {} });
      const stale = new Date(Date.now() - 10 * 60_000);
      const signer = new Webhook(SECRET);
      const signed = (id: string, at: Date) => ({
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': signer.sign(id, at, body),
      });
      const tooOld = await http('POST', provider.url, { rawBody: body, headers: signed('msg_1', stale) });
      expect(tooOld.status).toBe(401);
      const tampered = await http('POST', provider.url, {
        rawBody: body.replace('"x"', '"y"'),
        headers: signed('msg_2', new Date()),
      });
      expect(tampered.status).toBe(401);
      const good = await http('POST', provider.url, { rawBody: body, headers: signed('msg_3', new Date()) });
      expect(good.status).toBe(200);
    });
  });

  describe('the edge', () => {
    it('refuses invalid invocations with a pointer, and everything without the internal token', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 202 }));
      const cases: Array<[unknown, string]> = [
        [{ ...invocation(conversationId, url), call_control_id: 'a\r\nb' }, '/call_control_id'],
        [invocation(conversationId, url, { ack_timeout_ms: 5_000, timeout_ms: 2_000 }), '/tool/ack_timeout_ms'],
        [invocation(conversationId, url, { mode: 'later' }), '/tool/mode'],
        [invocation(conversationId, url, { timeout_ms: 999 }), '/tool/timeout_ms'],
        [invocation(conversationId, url, { signing_secret: 'not-a-secret' }), '/tool/signing_secret'],
        [{ ...invocation(conversationId, url), arguments: [1] }, '/arguments'],
      ];
      for (const [body, pointer] of cases) {
        const answer = await invoke(body);
        expect(answer.status).toBe(400);
        expect(answer.body.errors[0]).toMatchObject({ code: 'invalid_request', source: { pointer } });
        expect(JSON.stringify(answer.body)).not.toContain('not-a-secret');
      }
      const unauthorised = await Promise.all([
        http('POST', `${dispatcherUrl}/internal/v1/tool-invocations`, { body: invocation(conversationId, url) }),
        http('POST', `${dispatcherUrl}/internal/v1/tool-invocations`, {
          body: invocation(conversationId, url),
          headers: { authorization: 'Bearer not-the-internal-api-token' },
        }),
      ]);
      for (const answer of unauthorised) {
        expect(answer.status).toBe(statusOf(ERROR_CODE.unauthorized));
        expect(answer.body.errors).toHaveLength(1);
        expect(answer.body.errors[0].code).toBe(ERROR_CODE.unauthorized);
      }
      expect(tool.requestsTo(url)).toHaveLength(0);
    });

    it('exposes its metrics, with no ids in their labels', async () => {
      const metrics = await http('GET', `${dispatcherUrl}/metrics`);
      const text = metrics.body as string;
      expect(text).toMatch(
        /backchannel_dispatch_requests_total\{[^}]*mode="async",outcome="acknowledged"[^}]*\} [1-9]/,
      );
      expect(text).toMatch(/backchannel_dispatch_requests_total\{[^}]*mode="sync",outcome="timeout"[^}]*\} 1/);
      expect(text).toMatch(
        /backchannel_cancel_notices_total\{[^}]*reason="cancelled",outcome="delivered"[^}]*\} [1-9]/,
      );
      expect(text).toContain('backchannel_dispatch_duration_seconds_bucket');
      expect(text).toContain('backchannel_dispatch_in_flight');
      expect(text).not.toMatch(/wi_[0-9A-Z]{26}|dispatch-\d/);
    });

    it('no signing secret or callback token reaches a log line, a stream or a bucket', async () => {
      const lines = services.flatMap((service) => service.logs.lines).join('\n');
      expect(lines.length).toBeGreaterThan(0);
      expect(lines).not.toContain(SECRET);
      expect(lines).not.toMatch(/whsec_[A-Za-z0-9+/=]{8}/);
      expect(lines).not.toMatch(/cbt_[A-Za-z0-9_-]{8}/);

      const jsm = services[0].service.context.nats.jsm;
      const streams = [...STREAMS.map((spec) => spec.name), ...BUCKETS.map((spec) => `KV_${spec.bucket}`)];
      let scanned = 0;
      for (const stream of streams) {
        const info = await jsm.streams.info(stream);
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
          const message = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
          if (!message) continue;
          scanned++;
          const text = new TextDecoder().decode(message.data);
          expect(text).not.toContain('whsec_');
          expect(text).not.toMatch(/cbt_[A-Za-z0-9_-]{43}/);
        }
      }
      expect(scanned).toBeGreaterThan(10);
    });
  });
});
