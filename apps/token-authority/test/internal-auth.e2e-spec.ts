import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { API_SUBJECTS, ERROR_CODE } from '@backchannel/contracts';
import type { NatsServerHandle } from '@backchannel/testing';
import { TOKEN_AUTHORITY } from '../src/token-authority.service-definition.js';
import { expectError } from '../../../test/support/answers.js';
import {
  INTERNAL_TOKEN,
  http,
  startNatsServer,
  startTestService,
  type TestService,
} from '../../../test/support/mesh.js';
import { NatsApiClient } from '../../../test/support/nats-client.js';

/**
 * CONTRACT.md §2: every `/internal/v1/` request needs `Authorization: Bearer
 * <INTERNAL_API_TOKEN>`, else 401 `unauthorized`; with the variable unset (§8) the
 * internal HTTP API refuses everyone. Every route of the token authority's port, each
 * with a body that would otherwise be acted on, so a 401 cannot be a validation answer
 * in disguise, and nothing refused has any effect.
 */
const KNOWN_WORK_ITEM = 'wi_01ARZ3NDEKTSV4RRFFQ69G5FAV';
const KNOWN_KEY = 'key_01ARZ3NDEKTSV4RRFFQ69G5FAV';

function routes(conversationId: string): { method: string; path: string; body?: unknown }[] {
  return [
    { method: 'POST', path: '/internal/v1/conversations', body: { conversation_id: conversationId, tenant_id: 't1' } },
    { method: 'POST', path: `/internal/v1/conversations/${conversationId}/end`, body: {} },
    { method: 'POST', path: '/internal/v1/work-items', body: { conversation_id: conversationId, kind: 'tool' } },
    { method: 'POST', path: `/internal/v1/work-items/${KNOWN_WORK_ITEM}/cancel` },
    { method: 'GET', path: `/internal/v1/work-items/${KNOWN_WORK_ITEM}` },
    { method: 'POST', path: '/internal/v1/api-keys', body: { tenant_id: 't1' } },
    { method: 'POST', path: `/internal/v1/api-keys/${KNOWN_KEY}/revoke` },
    // Not a route at all: refused before routing, so the API's shape is not probed either.
    { method: 'GET', path: '/internal/v1/no-such-route' },
  ];
}

const WRONG_AUTHORIZATIONS: Record<string, string | undefined> = {
  missing: undefined,
  'wrong bearer token': `Bearer ${INTERNAL_TOKEN}-not`,
  'wrong token of the same length': `Bearer ${'x'.repeat(INTERNAL_TOKEN.length)}`,
  'empty bearer token': 'Bearer ',
  'the token without the Bearer scheme': INTERNAL_TOKEN,
  'another scheme': `Basic ${Buffer.from(`platform:${INTERNAL_TOKEN}`).toString('base64')}`,
};

async function expectAllRefused(
  baseUrl: string,
  authorizations: Record<string, string | undefined>,
  conversationId: string,
) {
  for (const route of routes(conversationId)) {
    for (const [name, authorization] of Object.entries(authorizations)) {
      const answer = await http(route.method, `${baseUrl}${route.path}`, {
        body: route.body,
        headers: authorization === undefined ? {} : { authorization },
      });
      try {
        expectError(answer, 401, ERROR_CODE.unauthorized);
      } catch (error) {
        throw new Error(`${route.method} ${route.path} with ${name}: ${(error as Error).message}`);
      }
    }
  }
}

describe('token authority: internal API authorization', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let client: NatsApiClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    ta = await startTestService(TOKEN_AUTHORITY, nats);
    client = await NatsApiClient.connect(nats.url);
  });

  afterAll(async () => {
    await client?.close();
    await ta?.service.stop();
    await nats?.cleanup();
  });

  it('401 unauthorized on every /internal/v1 route without the right bearer token; nothing refused takes effect', async () => {
    const conversation = 'auth-every-route';
    await expectAllRefused(ta.service.url, WRONG_AUTHORIZATIONS, conversation);
    // The refused open did not open it: with the right token, ending it is 404.
    const end = await http('POST', `${ta.service.url}/internal/v1/conversations/${conversation}/end`, {
      internal: true,
    });
    expectError(end, 404, ERROR_CODE.not_found);
  });

  it('the right bearer token is let through on the same routes, to their ordinary answers', async () => {
    const answers = [];
    for (const route of routes('auth-let-through')) {
      const answer = await http(route.method, `${ta.service.url}${route.path}`, { internal: true, body: route.body });
      answers.push(`${route.method} ${route.path.split('/')[3]} ${answer.status}`);
    }
    // Opened, ended, registration refused as ended, unknown item/key/route: none is a 401.
    expect(answers).toEqual([
      'POST conversations 201',
      'POST conversations 200',
      'POST work-items 410',
      'POST work-items 404',
      'GET work-items 404',
      'POST api-keys 201',
      'POST api-keys 404',
      'GET no-such-route 404',
    ]);
  });
});

describe('token authority: INTERNAL_API_TOKEN unset', () => {
  let nats: NatsServerHandle;
  let ta: TestService;
  let client: NatsApiClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    // An empty value is an unset one (libs/config): no token is configured at all.
    ta = await startTestService(TOKEN_AUTHORITY, nats, { INTERNAL_API_TOKEN: '' });
    client = await NatsApiClient.connect(nats.url);
  });

  afterAll(async () => {
    await client?.close();
    await ta?.service.stop();
    await nats?.cleanup();
  });

  it('refuses every /internal/v1 request with 401, whatever it presents, while the service itself works', async () => {
    const conversation = 'auth-unset';
    await expectAllRefused(
      ta.service.url,
      { ...WRONG_AUTHORIZATIONS, 'the token other services use': `Bearer ${INTERNAL_TOKEN}` },
      conversation,
    );
    // The NATS API (whose boundary is NATS permissions) still serves: the 401s are the
    // missing token's doing, not a broken service. And the refused open had no effect.
    const opened = await client.request(API_SUBJECTS.conversationsOpen, {
      conversation_id: conversation,
      tenant_id: 't1',
    });
    expect(opened).toMatchObject({ conversation_id: conversation, state: 'active' });
    const health = await http('GET', `${ta.service.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
