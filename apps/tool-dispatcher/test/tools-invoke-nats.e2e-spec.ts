import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { API_SUBJECTS, ERROR_CODE, ERROR_CODES, type ErrorCode } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../callback-ingress/src/callback-ingress.service-definition.js';
import { ORDERING_SEQUENCER } from '../../ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../src/tool-dispatcher.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient } from '../../../test/support/platform.js';
import { ReleaseWatcher } from '../../../test/support/releases.js';
import { FakeTool } from './fake-tool.js';

/** CONTRACT.md §2: platform clients wait at least timeout_ms + 1 s (sync) and 15 s (async). */
const REQUEST_TIMEOUT_MS = 15_000;
const CALL_CONTROL_ID = 'v3:call-control/nats';

/**
 * `bc.v1.tools.invoke` over NATS request–reply (CONTRACT.md §2, §6): every reply is the
 * plain JSON of the contract — the result object, or `{"errors":[…]}` — never a transport
 * wrapper. Also: a provider's redirect is never followed (§6, outbound safety).
 */
describe('tool dispatcher: bc.v1.tools.invoke over NATS, and redirects', () => {
  let nats: NatsServerHandle;
  let services: TestService[];
  let platform: PlatformClient;
  let watcher: ReleaseWatcher;
  let tool: FakeTool;
  /** Another local server, where the provider's redirects point: it must never be reached. */
  let redirectTarget: FakeTool;
  let nc: NatsConnection;
  let n = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    const ingress = await startTestService(CALLBACK_INGRESS, nats);
    const ta = await startTestService(TOKEN_AUTHORITY, nats, { PUBLIC_BASE_URL: ingress.service.url });
    services = [
      await startTestService(TOOL_DISPATCHER, nats),
      await startTestService(ORDERING_SEQUENCER, nats),
      ingress,
      ta,
    ];
    platform = new PlatformClient(ta.service.url);
    watcher = await ReleaseWatcher.start(nats.url);
    tool = await FakeTool.start();
    redirectTarget = await FakeTool.start();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await nc?.close();
    await watcher?.close();
    for (const service of services ?? []) await service.service.stop();
    await tool?.close();
    await redirectTarget?.close();
    await nats?.cleanup();
  });

  async function conversation(): Promise<string> {
    const id = `nats-invoke-${++n}`;
    await platform.openConversation(id);
    return id;
  }

  function invocation(conversationId: string, url: string, toolSettings: Record<string, unknown> = {}) {
    return {
      conversation_id: conversationId,
      call_control_id: CALL_CONTROL_ID,
      tool: { url, mode: 'sync', ...toolSettings },
      arguments: { city: 'Lyon' },
      name: 'weather',
    };
  }

  /** The raw reply, parsed: what a platform client written against the contract sees. */
  async function invoke(body: unknown): Promise<Record<string, any>> {
    const reply = await nc.request(API_SUBJECTS.toolsInvoke, JSON.stringify(body), { timeout: REQUEST_TIMEOUT_MS });
    return JSON.parse(new TextDecoder().decode(reply.data)) as Record<string, any>;
  }

  /** `{"errors":[one error]}` and nothing else, with the contract's code and title. */
  function expectErrorReply(reply: Record<string, any>, code: ErrorCode): Record<string, any> {
    expect(Object.keys(reply)).toEqual(['errors']);
    expect(reply.errors).toHaveLength(1);
    expect(reply.errors[0]).toMatchObject({ code, title: ERROR_CODES[code].title });
    return reply.errors[0] as Record<string, any>;
  }

  describe('sync mode', () => {
    it('replies {"result": …} with the provider result, and registers no work item', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 200, body: { result: { temperature_c: 17, sky: 'clear' } } }));

      const reply = await invoke(invocation(conversationId, url));

      expect(reply).toEqual({ result: { temperature_c: 17, sky: 'clear' } });
      expect(tool.requestsTo(url)).toHaveLength(1);
      expect((await platform.register(conversationId)).sequence).toBe(1);
    });

    it('replies tool_failed with the provider errors, or with its status, without retrying', async () => {
      const conversationId = await conversation();
      const errors = [{ code: 'city_unknown', title: 'Unknown city', detail: 'no such city' }];
      const withErrors = await invoke(
        invocation(
          conversationId,
          tool.route(() => ({ status: 200, body: { errors } })),
        ),
      );
      expect(expectErrorReply(withErrors, ERROR_CODE.tool_failed).meta).toMatchObject({ errors });

      const failing = tool.route(() => ({ status: 500, body: 'boom' }));
      const withStatus = await invoke(invocation(conversationId, failing));
      expect(expectErrorReply(withStatus, ERROR_CODE.tool_failed).meta).toMatchObject({ status: 500 });
      expect(tool.requestsTo(failing)).toHaveLength(1);
    });

    it('replies tool_timeout when the provider does not answer within timeout_ms, without retrying', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 200, body: { result: 'too late' }, delayMs: 30_000 }));

      const reply = await invoke(invocation(conversationId, url, { timeout_ms: 1_000 }));

      expectErrorReply(reply, ERROR_CODE.tool_timeout);
      expect(tool.requestsTo(url)).toHaveLength(1);
    });
  });

  describe('conversation state (async mode: the work item registration decides)', () => {
    it('replies not_found for an unknown conversation and conversation_ended for an ended one, calling no provider', async () => {
      const url = tool.route(() => ({ status: 202 }));

      const unknown = await invoke(invocation('nats-no-such-conversation', url, { mode: 'async' }));
      expectErrorReply(unknown, ERROR_CODE.not_found);
      const ended = await conversation();
      await platform.endConversation(ended);
      expectErrorReply(await invoke(invocation(ended, url, { mode: 'async' })), ERROR_CODE.conversation_ended);

      expect(tool.requestsTo(url)).toHaveLength(0);
    });
  });

  describe('async mode', () => {
    it('replies tool_unreachable with meta.work_item_id after the last failed attempt; the item fails and its error is injected', async () => {
      const conversationId = await conversation();
      const url = tool.route(() => ({ status: 503 }));

      const reply = await invoke(invocation(conversationId, url, { mode: 'async' }));

      const error = expectErrorReply(reply, ERROR_CODE.tool_unreachable);
      const workItemId = error.meta?.work_item_id as string;
      expect(workItemId).toMatch(/^wi_[0-9A-Z]{26}$/);
      expect(tool.requestsTo(url)).toHaveLength(3);
      expect((await platform.workItem(workItemId)).state).toBe('failed');
      const release = await eventually(() => {
        const releases = watcher.of(conversationId);
        expect(releases).toHaveLength(1);
        return releases[0];
      });
      expect(release).toMatchObject({ source: { type: 'dispatch', work_item_id: workItemId, sequence: 1 } });
      expect(release.errors?.[0].code).toBe(ERROR_CODE.tool_unreachable);
    });
  });

  describe('redirects are not followed (CONTRACT.md §6)', () => {
    /** A provider route that answers `status` with a Location on the other server. */
    function redirecting(status: number): { url: string; target: string } {
      const target = redirectTarget.route(() => ({ status: 200, body: { result: 'followed' } }));
      const url = tool.route(() => ({ status, headers: { location: target } }));
      return { url, target };
    }

    it.each([302, 307, 308])(
      'sync mode: a %i answer is tool_failed with its status; the redirect target receives nothing',
      async (status) => {
        const conversationId = await conversation();
        const { url, target } = redirecting(status);

        const reply = await invoke(invocation(conversationId, url));

        expect(expectErrorReply(reply, ERROR_CODE.tool_failed).meta).toMatchObject({ status });
        expect(tool.requestsTo(url)).toHaveLength(1);
        expect(redirectTarget.requestsTo(target)).toHaveLength(0);
        expect(redirectTarget.connections).toBe(0);
      },
    );

    it.each([301, 303, 307])(
      'async mode: a %i answer is a failed acknowledgement, ending in tool_unreachable; the redirect target receives nothing',
      async (status) => {
        const conversationId = await conversation();
        const { url, target } = redirecting(status);

        const reply = await invoke(invocation(conversationId, url, { mode: 'async' }));

        const error = expectErrorReply(reply, ERROR_CODE.tool_unreachable);
        expect((await platform.workItem(error.meta?.work_item_id as string)).state).toBe('failed');
        expect(tool.requestsTo(url)).toHaveLength(3);
        expect(redirectTarget.requestsTo(target)).toHaveLength(0);
        expect(redirectTarget.connections).toBe(0);
      },
    );
  });
});
