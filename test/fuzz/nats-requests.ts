import fc from 'fast-check';
import { API_KEY_ID_PATTERN, API_SUBJECTS, WORK_ITEM_ID_PATTERN, type ApiSubject } from '@backchannel/contracts';
import type { Fixtures } from './fuzz-mesh.js';
import {
  type Breaker,
  type Draft,
  type NatsCase,
  badExternalId,
  badPrefixedId,
  bodyText,
  breaker,
  fieldBreaker,
  freeFormObject,
  invocationBody,
  invocationBreakers,
  missingField,
  nonObjectJson,
  notJson,
  objectBody,
  outOfRange,
  parses,
  strayFieldBreaker,
  freshExternalId,
  unknownExternalId,
  unknownKeyId,
  unknownWorkItemId,
  wrongType,
} from './fuzz-values.js';

const encoder = new TextEncoder();

/** The `bc.v1.*` families: malformed JSON and wrong shapes on every request–reply subject. */
export function natsFamilies(f: Fixtures): Record<string, fc.Arbitrary<NatsCase>> {
  const c = f.conversations;
  const i = f.items;
  const subjects: {
    subject: ApiSubject;
    template: fc.Arbitrary<Record<string, unknown>>;
    breakers: fc.Arbitrary<Breaker>[];
  }[] = [
    {
      subject: API_SUBJECTS.conversationsOpen,
      template: fc
        .tuple(freshExternalId, fc.option(freeFormObject, { nil: undefined }))
        .map(([id, metadata]) => ({ conversation_id: id, tenant_id: f.tenantA, ...(metadata ? { metadata } : {}) })),
      breakers: [
        missingField(['conversation_id', 'tenant_id']),
        fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker('tenant_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker('metadata', wrongType('object', false)),
        fc.constant(
          breaker(
            'state: another tenant',
            (d) => ({ body: { ...objectBody(d), conversation_id: c.active, tenant_id: f.tenantB } }),
            [409],
          ),
        ),
      ],
    },
    {
      subject: API_SUBJECTS.conversationsEnd,
      template: fc.constant({ conversation_id: c.victim }),
      breakers: [
        missingField(['conversation_id']),
        fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker('reason', fc.oneof(wrongType('string', false), fc.constant('r'.repeat(257)))),
        unknownExternalId.map((id) => breaker('state: unknown', () => ({ body: { conversation_id: id } }), [404])),
      ],
    },
    {
      subject: API_SUBJECTS.workItemsRegister,
      template: fc.constant({ conversation_id: c.active, kind: 'tool', timeout_ms: 3_600_000 }),
      breakers: [
        missingField(['conversation_id', 'kind']),
        fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker('kind', fc.oneof(fc.constantFrom('', 'TOOL'), wrongType('string', true))),
        fieldBreaker('timeout_ms', outOfRange(1_000, 3_600_000)),
        fieldBreaker('ordered', wrongType('boolean', false)),
        fieldBreaker('idempotency_key', fc.constantFrom('', 'k'.repeat(129))),
        fc.constant(
          breaker(
            'state: ended conversation',
            (d) => ({ body: { ...objectBody(d), conversation_id: c.ended } }),
            [410],
          ),
        ),
      ],
    },
    ...(['workItemsCancel', 'workItemsGet'] as const).map((name) => ({
      subject: API_SUBJECTS[name],
      template: fc.constant({
        work_item_id: name === 'workItemsCancel' ? i.victim.work_item_id : i.pendingTool.work_item_id,
      }),
      breakers: [
        missingField(['work_item_id']),
        fieldBreaker(
          'work_item_id',
          fc.oneof(badPrefixedId('wi_', i.victim.work_item_id, WORK_ITEM_ID_PATTERN), wrongType('string', true)),
        ),
        unknownWorkItemId.map((id) => breaker('state: unknown', () => ({ body: { work_item_id: id } }), [404])),
        ...(name === 'workItemsCancel'
          ? [
              fc.constant(
                breaker('state: completed', () => ({ body: { work_item_id: i.completed.work_item_id } }), [410]),
              ),
            ]
          : []),
      ],
    })),
    {
      subject: API_SUBJECTS.apiKeysCreate,
      template: fc.constant({ tenant_id: f.tenantA }),
      breakers: [
        missingField(['tenant_id']),
        fieldBreaker('tenant_id', fc.oneof(badExternalId, wrongType('string', true))),
      ],
    },
    {
      subject: API_SUBJECTS.apiKeysRevoke,
      template: fc.constant({ key_id: f.keys.victim.key_id }),
      breakers: [
        missingField(['key_id']),
        fieldBreaker(
          'key_id',
          fc.oneof(badPrefixedId('key_', f.keys.victim.key_id, API_KEY_ID_PATTERN), wrongType('string', true)),
        ),
        unknownKeyId.map((id) => breaker('state: unknown', () => ({ body: { key_id: id } }), [404])),
      ],
    },
    {
      subject: API_SUBJECTS.messagesList,
      template: fc.constant({ conversation_id: c.active }),
      breakers: [
        missingField(['conversation_id']),
        fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
        fieldBreaker(
          'after',
          fc.oneof(
            fc.integer({ max: -1 }),
            fc.double({ min: 0.1, max: 10, noNaN: true }).filter((n) => !Number.isInteger(n)),
            wrongType('number', false),
          ),
        ),
        fieldBreaker('limit', fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 1_001 }), wrongType('number', false))),
        unknownExternalId.map((id) =>
          breaker('state: unknown', (d) => ({ body: { ...objectBody(d), conversation_id: id } }), [404]),
        ),
      ],
    },
    {
      subject: API_SUBJECTS.toolsInvoke,
      template: invocationBody(c.active),
      breakers: [fc.constant(breaker('tool url private', () => ({}), [400])), ...invocationBreakers()],
    },
  ];
  const families: Record<string, fc.Arbitrary<NatsCase>> = {};
  for (const { subject, template, breakers } of subjects) {
    const shaped = fc
      .tuple(template, fc.array(fc.oneof(strayFieldBreaker, ...breakers), { minLength: 1, maxLength: 2 }))
      .map(([body, applied]) => {
        const draft = applied.reduce((current, apply) => apply(current), {
          method: '',
          path: '',
          headers: {},
          body,
          broken: [],
          presented: [],
        } as Draft);
        return {
          kind: 'nats' as const,
          family: `nats.${subject}`,
          subject,
          data: encoder.encode(bodyText(draft.body) ?? ''),
          broken: draft.broken,
          ...(applied.length === 1 && draft.statuses ? { statuses: draft.statuses } : {}),
          presented: [],
        };
      });
    const unparsable = fc
      .oneof(
        notJson.filter((text) => text !== '').map((text) => ({ data: encoder.encode(text), broken: ['not JSON'] })),
        nonObjectJson.map((value) => ({ data: encoder.encode(JSON.stringify(value)), broken: ['not an object'] })),
        fc
          .uint8Array({ minLength: 1, maxLength: 64 })
          .filter((bytes) => !parses(Buffer.from(bytes).toString('utf8')))
          .map((data) => ({ data, broken: ['bytes'] })),
      )
      .map(({ data, broken }) => ({
        kind: 'nats' as const,
        family: `nats.${subject}`,
        subject,
        data,
        broken,
        statuses: [400],
        presented: [],
      }));
    families[`nats.${subject}`] = fc.oneof({ weight: 3, arbitrary: shaped }, { weight: 1, arbitrary: unparsable });
  }
  return families;
}
