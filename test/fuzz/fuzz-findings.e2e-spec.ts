import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CONTRACT_HEADERS, ERROR_CODE } from '@backchannel/contracts';
import type { NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../../apps/tool-dispatcher/src/tool-dispatcher.service-definition.js';
import { expectError } from '../support/answers.js';
import { INTERNAL_TOKEN, http, startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient } from '../support/platform.js';

/**
 * The defects the endpoint fuzzing found (KNOWN_DEFECTS in fuzz-values.ts, reported in
 * docs/reliability.md), each pinned by the request that shows it. They are `it.failing`:
 * each passes while its defect is there and fails once it is fixed; then make it a plain
 * `it` and remove the entry from KNOWN_DEFECTS, so the CI fuzzing sends those inputs too.
 */
describe('defects found by the endpoint fuzzing', () => {
  const RATE_LIMIT = 3;
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingress: string;
  let tokenAuthority: string;
  let injector: string;
  let dispatcher: string;
  let platform: PlatformClient;

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
  });

  afterAll(async () => {
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  // KNOWN_DEFECTS.encodedPaths: the onRequest hook of libs/http/src/service-runtime.ts checks
  // `request.url.startsWith('/internal/')`, but the router decodes %69 and routes the request.
  it('an internal route spelled /%69nternal/… still needs the bearer token (token authority)', async () => {
    const created = await http('POST', `${tokenAuthority}/%69nternal/v1/api-keys`, { body: { tenant_id: 'tenant-x' } });
    expectError(created, 401, ERROR_CODE.unauthorized);
  });

  it('an internal route spelled /%69nternal/… still needs the bearer token (tool dispatcher)', async () => {
    const invoked = await http('POST', `${dispatcher}/%69nternal/v1/tool-invocations`, { body: {} });
    expectError(invoked, 401, ERROR_CODE.unauthorized);
  });

  // KNOWN_DEFECTS.encodedPaths: the ingress refuses non-JSON media types in a preValidation
  // hook keyed on `request.url.startsWith('/api/v1/webhooks/')` (apps/callback-ingress/src/ingress-http.ts).
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

  // KNOWN_DEFECTS.encodedPaths: both rate limits' allowList is keyed on request.url
  // (apps/callback-ingress/src/ingress-http.ts, apps/conversation-injector/src/injector-http.ts).
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

  // KNOWN_DEFECTS.formBodies: Nest registers an application/x-www-form-urlencoded parser;
  // the platform API is JSON (CONTRACT.md §2), and only the ingress refuses forms.
  it('the token authority refuses a form-encoded body', async () => {
    const created = await http('POST', `${tokenAuthority}/internal/v1/api-keys`, {
      rawBody: 'tenant_id=tenant-form',
      headers: { authorization: `Bearer ${INTERNAL_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectError(created, 415, ERROR_CODE.unsupported_media_type);
  });

  // KNOWN_DEFECTS.prototypeNames: class-validator's whitelist finds `toString` & co. on
  // Object.prototype, so forbidNonWhitelisted lets them through (libs/http/src/validation.ts).
  it('an unknown field named toString is refused like any unknown field', async () => {
    const opened = await http('POST', `${tokenAuthority}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: 'found-proto', tenant_id: 'tenant-a', toString: 'x' },
    });
    expectError(opened, 400, ERROR_CODE.invalid_request);
    expect(opened.body.errors[0].source).toEqual({ pointer: '/toString' });
  });

  // KNOWN_DEFECTS.errorEchoesUrl: Fastify's router refuses a parameter longer than 100
  // characters, and the frameworkErrors handler of libs/http/src/service-runtime.ts puts its
  // message, which quotes the raw URL, in `detail` (CONTRACT.md §5: no error holds a key).
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
});
