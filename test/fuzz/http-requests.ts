import fc from 'fast-check';
import { API_KEY_ID_PATTERN, WORK_ITEM_ID_PATTERN } from '@backchannel/contracts';
import { INTERNAL_TOKEN } from '../support/mesh.js';
import type { FixtureItem, Fixtures, FuzzService } from './fuzz-mesh.js';
import {
  BASE64URL,
  type Breaker,
  type Draft,
  type HttpCase,
  anyText,
  authBreaker,
  badExternalId,
  badPrefixedId,
  bodyText,
  breaker,
  contentTypeBreaker,
  fieldBreaker,
  freeFormObject,
  invocationBody,
  invocationBreakers,
  malformedBody,
  missingField,
  notJson,
  objectBody,
  ofAlphabet,
  oneOff,
  outOfRange,
  pathVariantBreaker,
  pathVariantModifier,
  poisonedFreeForm,
  printable,
  strayField,
  strayFieldBreaker,
  freshExternalId,
  unknownExternalId,
  unknownKeyId,
  unknownWorkItemId,
  wrongMethod,
  wrongType,
} from './fuzz-values.js';

/**
 * The HTTP families (issue 10): the token authority's and the tool dispatcher's internal API,
 * the injector's tenant API, and the ingress's callbacks and progress, built as fuzz-values.ts
 * describes.
 */

interface Endpoint {
  family: string;
  service: FuzzService;
  template: fc.Arbitrary<Draft>;
  breakers: fc.Arbitrary<Breaker>[];
}

function cases(endpoint: Endpoint): fc.Arbitrary<HttpCase> {
  return fc
    .tuple(
      endpoint.template,
      fc.array(fc.oneof(...endpoint.breakers), { minLength: 1, maxLength: 2 }),
      // One case in eight also spells its path another way.
      fc.oneof({ weight: 7, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: pathVariantModifier }),
    )
    .map(([template, breakers, modifier]) => {
      const broken = breakers.reduce((current, apply) => apply(current), template);
      const draft = modifier ? modifier(broken) : broken;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(draft.headers)) if (value !== undefined) headers[name] = value;
      const body = bodyText(draft.body);
      if (body === undefined) delete headers['content-type'];
      return {
        kind: 'http' as const,
        family: endpoint.family,
        service: endpoint.service,
        method: draft.method,
        path: draft.path,
        headers,
        ...(body !== undefined ? { body } : {}),
        broken: draft.broken,
        ...(breakers.length === 1 && draft.statuses ? { statuses: draft.statuses } : {}),
        presented: draft.presented.filter((secret) => secret.length >= 8),
        ...(modifier ? { variant: true } : {}),
      };
    });
}

const seg = encodeURIComponent;

function internalDraft(method: string, path: string, body?: unknown): Draft {
  return {
    method,
    path,
    headers: {
      authorization: `Bearer ${INTERNAL_TOKEN}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body } : {}),
    broken: [],
    presented: [],
  };
}

/** The HTTP families: every public, tenant and internal endpoint. */
export function httpFamilies(f: Fixtures): Record<string, fc.Arbitrary<HttpCase>> {
  const internalAuth = authBreaker(INTERNAL_TOKEN, [f.keys.a.api_key, f.items.pendingTool.token], [401]);
  const tenantAuth = authBreaker(
    f.keys.a.api_key,
    [f.keys.revoked.api_key, INTERNAL_TOKEN, f.items.pendingTool.token],
    [401],
  );
  const internalCommon = (methods: string[]) => [internalAuth, pathVariantBreaker, wrongMethod(methods)];
  const bodyCommon = [malformedBody, strayFieldBreaker, contentTypeBreaker];
  const c = f.conversations;
  const i = f.items;

  const families: Endpoint[] = [
    {
      family: 'ta.conversations.open',
      service: 'token-authority',
      template: fc.tuple(freshExternalId, fc.option(freeFormObject, { nil: undefined })).map(([id, metadata]) =>
        internalDraft('POST', '/internal/v1/conversations', {
          conversation_id: id,
          tenant_id: f.tenantA,
          ...(metadata ? { metadata } : {}),
        }),
      ),
      breakers: [
        ...internalCommon(['POST']),
        ...bodyCommon,
        poisonedFreeForm('metadata'),
        missingField(['conversation_id', 'tenant_id']),
        fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker('tenant_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker(
          'metadata',
          fc.oneof(
            wrongType('object', false),
            fc.integer({ min: 4_200, max: 20_000 }).map((n) => ({ big: 'm'.repeat(n) })),
          ),
        ),
        fc.constant(
          breaker(
            'state: open for another tenant',
            (d) => ({ body: { ...objectBody(d), conversation_id: c.active, tenant_id: f.tenantB } }),
            [409],
          ),
        ),
        fc.constant(
          breaker(
            'state: reopen an ended one',
            (d) => ({ body: { ...objectBody(d), conversation_id: c.ended, tenant_id: f.tenantA } }),
            [410],
          ),
        ),
      ],
    },
    {
      family: 'ta.conversations.end',
      service: 'token-authority',
      template: fc
        .option(anyText(20), { nil: undefined })
        .map((reason) =>
          internalDraft(
            'POST',
            `/internal/v1/conversations/${seg(c.victim)}/end`,
            reason !== undefined ? { reason } : {},
          ),
        ),
      breakers: [
        ...internalCommon(['POST']),
        notJson.map((raw) => breaker('body not JSON', () => ({ body: { raw } }), [400])),
        strayFieldBreaker,
        // The body is optional here, but one of another media type is refused all the same (415).
        contentTypeBreaker,
        fieldBreaker('reason', fc.oneof(wrongType('string', false), fc.constant('r'.repeat(257)))),
        badExternalId
          .filter(routable)
          .map((id) => breaker('path id', () => ({ path: `/internal/v1/conversations/${seg(id)}/end` }), [400, 404])),
        secretInPath(f.secrets, (id) => `/internal/v1/conversations/${seg(id)}/end`, [400, 404]),
        unknownExternalId.map((id) =>
          breaker('state: unknown conversation', () => ({ path: `/internal/v1/conversations/${seg(id)}/end` }), [404]),
        ),
      ],
    },
    {
      family: 'ta.work-items.register',
      service: 'token-authority',
      template: fc.constantFrom('tool', 'llm').map((kind) =>
        internalDraft('POST', '/internal/v1/work-items', {
          conversation_id: c.active,
          kind,
          ordered: false,
          timeout_ms: 3_600_000,
        }),
      ),
      breakers: [
        ...internalCommon(['POST']),
        ...bodyCommon,
        missingField(['conversation_id', 'kind']),
        fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker('kind', fc.oneof(fc.constantFrom('Tool', 'LLM', '', 'tool ', 'agent'), wrongType('string', true))),
        fieldBreaker('timeout_ms', outOfRange(1_000, 3_600_000)),
        fieldBreaker('ordered', fc.oneof(fc.constantFrom('true', 0, 1), wrongType('boolean', false))),
        fieldBreaker('delivery', fc.oneof(fc.constantFrom('now', 'WHEN_IDLE', ''), wrongType('string', false))),
        fieldBreaker('name', fc.oneof(wrongType('string', false), fc.constant('n'.repeat(129)))),
        fieldBreaker('turn_id', fc.oneof(wrongType('string', false), fc.constant('t'.repeat(129)))),
        fieldBreaker('idempotency_key', fc.oneof(fc.constantFrom('', 'k'.repeat(129)), wrongType('string', false))),
        unknownExternalId.map((id) =>
          breaker('state: unknown conversation', (d) => ({ body: { ...objectBody(d), conversation_id: id } }), [404]),
        ),
        fc.constant(
          breaker(
            'state: ended conversation',
            (d) => ({ body: { ...objectBody(d), conversation_id: c.ended } }),
            [410],
          ),
        ),
      ],
    },
    {
      family: 'ta.work-items.get',
      service: 'token-authority',
      template: fc.constant(internalDraft('GET', `/internal/v1/work-items/${i.pendingTool.work_item_id}`)),
      breakers: [
        ...internalCommon(['GET', 'HEAD']),
        badPrefixedId('wi_', i.pendingTool.work_item_id, WORK_ITEM_ID_PATTERN)
          .filter(routable)
          .map((id) => breaker('path id', () => ({ path: `/internal/v1/work-items/${seg(id)}` }), [400, 404])),
        secretInPath(f.secrets, (id) => `/internal/v1/work-items/${seg(id)}`, [400, 404]),
        unknownWorkItemId.map((id) =>
          breaker('state: unknown work item', () => ({ path: `/internal/v1/work-items/${id}` }), [404]),
        ),
      ],
    },
    {
      family: 'ta.work-items.cancel',
      service: 'token-authority',
      template: fc.constant(internalDraft('POST', `/internal/v1/work-items/${i.victim.work_item_id}/cancel`)),
      breakers: [
        ...internalCommon(['POST']),
        badPrefixedId('wi_', i.victim.work_item_id, WORK_ITEM_ID_PATTERN)
          .filter(routable)
          .map((id) => breaker('path id', () => ({ path: `/internal/v1/work-items/${seg(id)}/cancel` }), [400, 404])),
        secretInPath(f.secrets, (id) => `/internal/v1/work-items/${seg(id)}/cancel`, [400, 404]),
        unknownWorkItemId.map((id) =>
          breaker('state: unknown work item', () => ({ path: `/internal/v1/work-items/${id}/cancel` }), [404]),
        ),
        fc.constant(
          breaker(
            'state: completed item',
            () => ({ path: `/internal/v1/work-items/${i.completed.work_item_id}/cancel` }),
            [410],
          ),
        ),
      ],
    },
    {
      family: 'ta.api-keys.create',
      service: 'token-authority',
      template: fc
        .constantFrom(f.tenantA, f.tenantB, 'fz-tenant-new')
        .map((tenant) => internalDraft('POST', '/internal/v1/api-keys', { tenant_id: tenant })),
      breakers: [
        ...internalCommon(['POST']),
        ...bodyCommon,
        missingField(['tenant_id']),
        fieldBreaker('tenant_id', fc.oneof(badExternalId, wrongType('string', true))),
      ],
    },
    {
      family: 'ta.api-keys.revoke',
      service: 'token-authority',
      template: fc.constant(internalDraft('POST', `/internal/v1/api-keys/${f.keys.victim.key_id}/revoke`)),
      breakers: [
        ...internalCommon(['POST']),
        badPrefixedId('key_', f.keys.victim.key_id, API_KEY_ID_PATTERN)
          .filter(routable)
          .map((id) => breaker('path id', () => ({ path: `/internal/v1/api-keys/${seg(id)}/revoke` }), [400, 404])),
        secretInPath(f.secrets, (id) => `/internal/v1/api-keys/${seg(id)}/revoke`, [400, 404]),
        unknownKeyId.map((id) =>
          breaker('state: unknown key', () => ({ path: `/internal/v1/api-keys/${id}/revoke` }), [404]),
        ),
      ],
    },
    {
      family: 'dispatcher.tool-invocations',
      service: 'tool-dispatcher',
      template: invocationBody(c.active).map((body) => internalDraft('POST', '/internal/v1/tool-invocations', body)),
      breakers: [
        // The template is already refused (a private tool URL): "none" sends it as it is.
        fc.constant(breaker('tool url private', () => ({}), [400])),
        ...internalCommon(['POST']),
        ...bodyCommon,
        poisonedFreeForm('arguments'),
        ...invocationBreakers(),
      ],
    },
    tenantEndpoint(
      f,
      'injector.messages.add',
      'POST',
      (id) => `/api/v1/conversations/${seg(id)}/messages`,
      tenantAuth,
      [
        ...bodyCommon,
        fieldBreaker(
          'messages',
          fc.oneof(
            wrongType('array', true),
            fc.constant([]),
            fc.array(fc.constant({ role: 'user', content: 'x' }), { minLength: 21, maxLength: 25 }),
          ),
        ),
        fc.tuple(fc.nat({ max: 2 }), badMessage).map(([at, bad]) =>
          breaker('a message', (d) => {
            const messages = [
              { role: 'user', content: 'ok' },
              { role: 'system', content: 'ok' },
            ];
            messages.splice(at, 0, bad as { role: string; content: string });
            return { body: { ...objectBody(d), messages } };
          }),
        ),
        fc
          .constantFrom('', 'k'.repeat(129))
          .map((key) =>
            breaker('idempotency-key', (d) => ({ headers: { ...d.headers, 'idempotency-key': key } }), [400]),
          ),
        fc.constant(
          breaker('state: ended conversation', (d) => ({ path: d.path.replace(seg(c.active), seg(c.ended)) }), [410]),
        ),
      ],
    ),
    tenantEndpoint(
      f,
      'injector.messages.list',
      'GET',
      (id) => `/api/v1/conversations/${seg(id)}/messages`,
      tenantAuth,
      [
        fc
          .tuple(fc.constantFrom('after', 'limit'), badQueryNumber)
          .map(([name, value]) =>
            breaker(
              `query ${name}`,
              (d) => ({ path: `${d.path.split('?')[0]}?${name}=${encodeURIComponent(value)}` }),
              [400],
            ),
          ),
        fc
          .constantFrom('limit=0', 'limit=1001', 'after=1&after=2', 'limit=1&limit=2')
          .map((query) => breaker('query', (d) => ({ path: `${d.path.split('?')[0]}?${query}` }), [400])),
      ],
    ),
    tenantEndpoint(f, 'injector.events', 'GET', (id) => `/api/v1/conversations/${seg(id)}/events`, tenantAuth, [
      badQueryNumber
        // Header values are trimmed, and an empty Last-Event-ID is no Last-Event-ID (EventSource).
        .filter((value) => value.trim() !== '' && !/^\d{1,15}$/.test(value.trim()) && /^[\x20-\x7e]*$/.test(value))
        .map((value) =>
          breaker('last-event-id', (d) => ({ headers: { ...d.headers, 'last-event-id': value } }), [400]),
        ),
      badQueryNumber.map((value) =>
        breaker('query after', (d) => ({ path: `${d.path.split('?')[0]}?after=${encodeURIComponent(value)}` }), [400]),
      ),
    ]),
    callbackEndpoint(f, false),
    callbackEndpoint(f, true),
  ];
  return Object.fromEntries(families.map((endpoint) => [endpoint.family, cases(endpoint)]));
}

/**
 * A secret where an id belongs in the path, once or repeated past the router's parameter
 * limit (100 characters): the refusal must not echo it (CONTRACT.md §5).
 */
function secretInPath(secrets: string[], pathOf: (id: string) => string, statuses: readonly number[]) {
  return fc
    .tuple(fc.constantFrom(...secrets), fc.integer({ min: 1, max: 3 }))
    .map(([secret, times]) =>
      breaker(`a secret as the path id x${times}`, () => ({ path: pathOf(secret.repeat(times)) }), statuses),
    );
}

/** Path ids that reach the route at all ('' and dot segments name other paths). */
const routable = (id: string) => id !== '' && id !== '.' && id !== '..' && !id.includes('/');

const badQueryNumber = fc
  .oneof(
    fc.constantFrom('-1', '1.5', '1e3', '0x10', ' 1', '+1', 'abc', '', '9999999999999999', 'NaN', '１'),
    printable(10),
  )
  .filter((value) => !/^\d{1,15}$/.test(value.trim()) || value !== value.trim());

const badMessage = fc.oneof(
  wrongType('object', true),
  fc.record({ role: fc.constantFrom('assistant', 'tool', '', 'User', 'system '), content: fc.constant('x') }),
  fc.record({
    role: fc.constant('user'),
    content: fc.oneof(fc.constant(''), fc.constant('c'.repeat(32_769)), wrongType('string', true)),
  }),
  fc.record({ role: fc.constant('user') }),
  fc.record({ content: fc.constant('x') }),
  fc
    .tuple(strayField, fc.jsonValue({ maxDepth: 1 }))
    .map(([name, value]) => ({ role: 'user', content: 'x', [name]: value })),
);

function tenantEndpoint(
  f: Fixtures,
  family: string,
  method: 'GET' | 'POST',
  pathOf: (conversationId: string) => string,
  tenantAuth: fc.Arbitrary<Breaker>,
  own: fc.Arbitrary<Breaker>[],
): Endpoint {
  const body = method === 'POST' ? { messages: [{ role: 'user', content: 'fuzz' }] } : undefined;
  const path = pathOf(f.conversations.active);
  return {
    family,
    service: 'conversation-injector',
    template: fc.constant({
      method,
      path,
      headers: { authorization: `Bearer ${f.keys.a.api_key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body } : {}),
      broken: [],
      presented: [],
    }),
    breakers: [
      ...own,
      tenantAuth,
      pathVariantBreaker,
      // GET and POST share the messages path; the events path has GET only.
      wrongMethod(family === 'injector.events' ? ['GET'] : ['GET', 'POST']),
      fc.constant(
        breaker(
          'auth: another tenant',
          (d) => ({ headers: { ...d.headers, authorization: `Bearer ${f.keys.b.api_key}` } }),
          [404],
        ),
      ),
      badExternalId.filter(routable).map((id) => breaker('path id', () => ({ path: pathOf(id) }), [400, 404])),
      secretInPath(f.secrets, pathOf, [400, 404]),
      unknownExternalId.map((id) => breaker('state: unknown conversation', () => ({ path: pathOf(id) }), [404])),
    ],
  };
}

// ---- callbacks -------------------------------------------------------------------------------

function callbackEndpoint(f: Fixtures, progress: boolean): Endpoint {
  const i = f.items;
  const pathOf = (id: string) => `/api/v1/webhooks/${seg(id)}${progress ? '/progress' : ''}`;
  const validBody = (item: FixtureItem) =>
    progress
      ? { progress: { message: 'fuzz' } }
      : item.kind === 'tool'
        ? { result: { fuzz: true } }
        : { message: { content: 'fuzz' } };
  const draftFor = (item: FixtureItem): Draft => ({
    method: 'POST',
    path: pathOf(item.work_item_id),
    headers: { 'content-type': 'application/json', 'x-callback-token': item.token },
    body: validBody(item),
    broken: [],
    presented: [],
  });
  const others = [i.pendingLlm.token, i.victim.token, i.cancelled.token, f.keys.a.api_key, INTERNAL_TOKEN];
  const badToken = fc
    .oneof(
      fc.constant(undefined),
      fc.constantFrom(...others),
      oneOff(i.pendingTool.token),
      ofAlphabet(BASE64URL, 43).map((rest) => `cbt_${rest}`),
      printable(80),
    )
    .filter((token) => token === undefined || token.trim() !== i.pendingTool.token);
  const badShape = progress
    ? fc.oneof(
        fc.record({ progress: fc.oneof(wrongType('object', true), fc.constant({})) }),
        fc.record({
          progress: fc.record({
            message: fc.oneof(fc.constant(''), fc.constant('m'.repeat(1_001)), wrongType('string', true)),
          }),
        }),
        fc.record({
          progress: fc.record({
            message: fc.constant('m'),
            // Optional fields: null would read as absent.
            percent: fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 101 }), wrongType('number', false)),
          }),
        }),
        fc.record({
          progress: fc.record({
            message: fc.constant('m'),
            id: fc.oneof(fc.constant(''), fc.constant('i'.repeat(65)), wrongType('string', false)),
          }),
        }),
        fc.record({ result: fc.jsonValue({ maxDepth: 2 }) }),
      )
    : fc.oneof(
        fc.record({ message: fc.jsonValue({ maxDepth: 2 }) }),
        fc.record({ result: fc.jsonValue({ maxDepth: 2 }), errors: fc.constant([{ code: 'c', title: 't' }]) }),
        fc.record({
          errors: fc.oneof(
            fc.constant([]),
            wrongType('array', true),
            fc.constant([{ code: 'c' }]),
            fc.constant([[{ code: 'c', title: 't' }]]),
          ),
        }),
        fc.record({ progress: fc.constant({ message: 'm' }) }),
        fc.constant({}),
      );
  return {
    family: progress ? 'ingress.progress' : 'ingress.callbacks',
    service: 'callback-ingress',
    // A tool's result is free-form JSON: the template's is any object (fuzz-values.ts).
    template: progress
      ? fc.constant(draftFor(i.pendingTool))
      : freeFormObject.map((result) => ({ ...draftFor(i.pendingTool), body: { result } })),
    breakers: [
      ...(progress ? [] : [poisonedFreeForm('result')]),
      badToken.map((token) =>
        breaker(
          'token',
          (d) => ({
            headers: { ...d.headers, 'x-callback-token': token },
            presented: token ? [...d.presented, token] : d.presented,
          }),
          [401],
        ),
      ),
      badPrefixedId('wi_', i.pendingTool.work_item_id, WORK_ITEM_ID_PATTERN)
        .filter(routable)
        .map((id) => breaker('path id', () => ({ path: pathOf(id) }), [401])),
      secretInPath(f.secrets, pathOf, [401]),
      unknownWorkItemId.map((id) => breaker('unknown work item', () => ({ path: pathOf(id) }), [401])),
      badShape.map((body) => breaker('body shape', () => ({ body }), [400])),
      malformedBody,
      strayFieldBreaker,
      contentTypeBreaker,
      fc
        .integer({ min: 70_000, max: 200_000 })
        .map((size) => breaker('body too large', () => ({ body: { result: 'x'.repeat(size) } }), [413])),
      wrongMethod(['POST']),
      pathVariantBreaker,
      fc.constant(
        breaker('state: cancelled item', () => ({ ...draftFor(i.cancelled), body: validBody(i.cancelled) }), [410]),
      ),
      fc.constant(breaker('state: item of an ended conversation', () => ({ ...draftFor(i.ofEnded) }), [410])),
      progress
        ? fc.constant(breaker('state: completed item', () => ({ ...draftFor(i.completed) }), [410]))
        : fc.constant(
            breaker(
              'state: completed item, another body',
              () => ({ ...draftFor(i.completed), body: { result: { another: true } } }),
              [409],
            ),
          ),
    ],
  };
}
