import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { API_SUBJECTS, CONTRACT_HEADERS, ERROR_CODE } from '@backchannel/contracts';
import { WorkLedger } from '@backchannel/messaging';
import type { NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../../apps/tool-dispatcher/src/tool-dispatcher.service-definition.js';
import { FakeTool } from '../../apps/tool-dispatcher/test/fake-tool.js';
import { expectError } from '../support/answers.js';
import { INTERNAL_TOKEN, http, startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { NatsApiClient } from '../support/nats-client.js';
import { PlatformClient } from '../support/platform.js';

/**
 * Regression tests for the defects the endpoint fuzzing found, and for one found while
 * fixing them (docs/reliability.md, "Defects the fuzzing found"), each the request that
 * showed it, now answered as the contract says. The fuzzing itself
 * (endpoints.fuzz.e2e-spec.ts) sends all these inputs in every profile, `npm test` included.
 */
describe('defects found by the endpoint fuzzing, fixed', () => {
  const RATE_LIMIT = 3;
  /** Free-form JSON keyed with the names of Object.prototype members. */
  const PROTOTYPE_KEYED = { constructor: 1, hasOwnProperty: 'x', toString: { a: 1 } };
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingress: string;
  let tokenAuthority: string;
  let injector: string;
  let dispatcher: string;
  let platform: PlatformClient;
  let natsApi: NatsApiClient;
  let ledger: WorkLedger;
  let tool: FakeTool;

  beforeAll(async () => {
    nats = await startNatsServer();
    const ingressService = await startTestService(CALLBACK_INGRESS, nats, {
      INGRESS_RATE_LIMIT_PER_SOURCE: String(RATE_LIMIT),
    });
    const env = { PUBLIC_BASE_URL: ingressService.service.url, INJECTOR_RATE_LIMIT_PER_KEY: String(RATE_LIMIT) };
    services = [
      ingressService,
      await startTestService(TOKEN_AUTHORITY, nats, env),
      await startTestService(CONVERSATION_INJECTOR, nats, env),
      await startTestService(TOOL_DISPATCHER, nats, env),
    ];
    [ingress, tokenAuthority, injector, dispatcher] = services.map((service) => service.service.url);
    platform = new PlatformClient(tokenAuthority);
    natsApi = await NatsApiClient.connect(nats.url);
    const { context } = services[1].service;
    ledger = new WorkLedger(context.nats.js, context.nats.reads, context.config.SEQUENCER_PARTITIONS);
    tool = await FakeTool.start();
  });

  afterAll(async () => {
    await natsApi?.close();
    for (const service of services) await service.service.stop();
    await tool?.close();
    await nats?.cleanup();
  });

  /** A conversation's metadata as stored in its log (no API reads it back). */
  async function storedMetadata(conversationId: string): Promise<unknown> {
    const opening = (await ledger.firstConversationEvent(conversationId))?.event;
    return opening?.type === 'conversation.opened' ? opening.metadata : undefined;
  }

  // Percent-encoded paths. The router decodes `%69` and routes `/%69nternal/v1/…` to the
  // internal handler: the bearer check must guard every request routed to an internal route,
  // whatever its spelling (isRouteUnder in libs/http/src/route-prefix.ts, used by the
  // onRequest hook of libs/http/src/service-runtime.ts).
  it('an internal route spelled /%69nternal/… still needs the bearer token (token authority)', async () => {
    const created = await http('POST', `${tokenAuthority}/%69nternal/v1/api-keys`, { body: { tenant_id: 'tenant-x' } });
    expectError(created, 401, ERROR_CODE.unauthorized);
  });

  it('an internal route spelled /%69nternal/… still needs the bearer token (tool dispatcher)', async () => {
    const invoked = await http('POST', `${dispatcher}/%69nternal/v1/tool-invocations`, { body: {} });
    expectError(invoked, 401, ERROR_CODE.unauthorized);
  });

  // The ingress refuses every media type but JSON on every route a callback path may be
  // spelled to: only JSON has a parser (apps/callback-ingress/src/ingress-http.ts).
  it('a callback path spelled /api/%76%31/… still refuses a form body', async () => {
    await platform.openConversation('found-form');
    const item = await platform.register('found-form', { ordered: false, timeout_ms: 3_600_000 });
    const posted = await http('POST', `${ingress}/api/%76%31/webhooks/${item.work_item_id}`, {
      rawBody: 'result=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded', [CONTRACT_HEADERS.callbackToken]: item.token },
    });
    expectError(posted, 415, ERROR_CODE.unsupported_media_type);
    expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
  });

  // Both rate limits guard every request routed to their routes, whatever its spelling
  // (allowList by isRouteUnder: apps/callback-ingress/src/ingress-http.ts,
  // apps/conversation-injector/src/injector-http.ts).
  it('the per-source callback rate limit counts every spelling of the path', async () => {
    const statuses: number[] = [];
    for (let n = 0; n < RATE_LIMIT * 3; n++) {
      const posted = await http('POST', `${ingress}/%61pi/v1/webhooks/wi_01M8Y00DG7005Z27BMH312N8M5`, {
        body: { result: 1 },
        headers: { [CONTRACT_HEADERS.callbackToken]: 'cbt_x' },
      });
      statuses.push(posted.status);
    }
    expect(statuses).toContain(429);
  });

  it('the tenant API rate limit counts every spelling of the path', async () => {
    const statuses: number[] = [];
    for (let n = 0; n < RATE_LIMIT * 3; n++) {
      const listed = await http('GET', `${injector}/%61pi/v1/conversations/found-rate/messages`, {
        headers: { authorization: 'Bearer bck_unknown' },
      });
      statuses.push(listed.status);
    }
    expect(statuses).toContain(429);
  });

  // Form bodies. The platform API is JSON (CONTRACT.md §2): no service has a form parser
  // (Nest's body parsers are off, libs/http/src/service-runtime.ts), so a form is 415.
  it('the token authority refuses a form-encoded body', async () => {
    const created = await http('POST', `${tokenAuthority}/internal/v1/api-keys`, {
      rawBody: 'tenant_id=tenant-form',
      headers: { authorization: `Bearer ${INTERNAL_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectError(created, 415, ERROR_CODE.unsupported_media_type);
  });

  // Names of Object.prototype members. validateDto (libs/http/src/validation.ts) refuses
  // every field its DTO does not declare, whatever it is named.
  it('an unknown field named toString is refused like any unknown field', async () => {
    const opened = await http('POST', `${tokenAuthority}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: 'found-proto', tenant_id: 'tenant-a', toString: 'x' },
    });
    expectError(opened, 400, ERROR_CODE.invalid_request);
    expect(opened.body.errors[0].source).toEqual({ pointer: '/toString' });
  });

  // A secret in a path. Fastify's router refuses a parameter longer than 100 characters;
  // the frameworkErrors answer (libs/http/src/service-runtime.ts) has a fixed detail, never
  // the router's message, which quotes the raw URL (CONTRACT.md §5: no error holds a key).
  it('a refused path does not echo an API key put in it', async () => {
    const created = await http('POST', `${tokenAuthority}/internal/v1/api-keys`, {
      internal: true,
      body: { tenant_id: 'tenant-echo' },
    });
    const key: string = created.body.api_key;
    const listed = await http('GET', `${injector}/api/v1/conversations/${key.repeat(3)}/messages`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expectError(listed, 400, ERROR_CODE.invalid_request);
    expect(JSON.stringify(listed.body)).not.toContain(key);
  });

  it('(for contrast) any other unknown field is refused', async () => {
    const opened = await http('POST', `${tokenAuthority}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: 'found-extra', tenant_id: 'tenant-a', extra: 'x' },
    });
    expectError(opened, 400, ERROR_CODE.invalid_request);
  });

  // Free-form JSON (found while fixing the above). Converting a body with class-transformer's
  // plainToInstance threw a TypeError on an own `constructor` key (500) and dropped keys named
  // like other Object.prototype members (`hasOwnProperty`, `toString`): validateDto now keeps
  // a free-form value exactly as parsed.
  it('metadata keyed constructor, hasOwnProperty, toString opens the conversation and is stored as sent', async () => {
    const opened = await http('POST', `${tokenAuthority}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: 'found-metadata', tenant_id: 'tenant-a', metadata: PROTOTYPE_KEYED },
    });
    expect(opened.status).toBe(201);
    expect(opened.body).toMatchObject({ conversation_id: 'found-metadata', state: 'active' });
    // The 201 does not hold the metadata, and no API reads it back: it is in the conversation's log.
    expect(JSON.stringify(await storedMetadata('found-metadata'))).toBe(JSON.stringify(PROTOTYPE_KEYED));
  });

  it('the same metadata over bc.v1.conversations.open', async () => {
    const opened = await natsApi.request(API_SUBJECTS.conversationsOpen, {
      conversation_id: 'found-metadata-nats',
      tenant_id: 'tenant-a',
      metadata: PROTOTYPE_KEYED,
    });
    expect(opened).toMatchObject({ conversation_id: 'found-metadata-nats', state: 'active' });
    expect(JSON.stringify(await storedMetadata('found-metadata-nats'))).toBe(JSON.stringify(PROTOTYPE_KEYED));
  });

  // HTTP refused a `__proto__` key (Fastify parses with secure-json-parse) while the NATS API
  // parsed with JSON.parse and stored it: both transports now parse alike (parseRequestJson
  // in libs/messaging/src/json.ts) and answer the same 400, opening nothing.
  it('a __proto__ or constructor.prototype key is refused alike over HTTP and NATS', async () => {
    const poisoned = [
      (id: string) => `{"conversation_id":"${id}","tenant_id":"tenant-a","metadata":{"__proto__":{"x":1}}}`,
      (id: string) => `{"conversation_id":"${id}","tenant_id":"tenant-a","metadata":{"constructor":{"prototype":{}}}}`,
    ];
    for (const [index, bodyOf] of poisoned.entries()) {
      const overHttp = await http('POST', `${tokenAuthority}/internal/v1/conversations`, {
        rawBody: bodyOf(`found-poison-http-${index}`),
        headers: { authorization: `Bearer ${INTERNAL_TOKEN}`, 'content-type': 'application/json' },
      });
      expectError(overHttp, 400, ERROR_CODE.invalid_request);
      const reply = await natsApi.nc.request(API_SUBJECTS.conversationsOpen, bodyOf(`found-poison-nats-${index}`), {
        timeout: 5_000,
      });
      const overNats = reply.json<{ errors: { code: string; detail: string }[] }>();
      expect(overNats.errors[0].code).toBe(ERROR_CODE.invalid_request);
      expect(overNats.errors[0].detail).toBe(overHttp.body.errors[0].detail.replace('the body', 'the request'));
      expect(await ledger.firstConversationEvent(`found-poison-http-${index}`)).toBeNull();
      expect(await ledger.firstConversationEvent(`found-poison-nats-${index}`)).toBeNull();
    }
  });

  it('tool arguments keyed constructor, hasOwnProperty, toString reach the provider as sent', async () => {
    await platform.openConversation('found-arguments');
    // A sync tool that answers with the arguments it received.
    const url = tool.route((request) => ({ status: 200, body: { result: request.body?.arguments } }));
    const invoked = await http('POST', `${dispatcher}/internal/v1/tool-invocations`, {
      internal: true,
      body: {
        conversation_id: 'found-arguments',
        call_control_id: 'v3:found-arguments',
        tool: { url, mode: 'sync' },
        arguments: PROTOTYPE_KEYED,
      },
    });
    expect(invoked.status).toBe(200);
    const received = tool.requestsTo(url);
    expect(received).toHaveLength(1);
    expect(JSON.stringify(received[0].body?.arguments)).toBe(JSON.stringify(PROTOTYPE_KEYED));
    expect(JSON.stringify(invoked.body)).toBe(JSON.stringify({ result: PROTOTYPE_KEYED }));
  });
});
