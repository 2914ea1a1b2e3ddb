import { API_SUBJECTS, CONTRACT_HEADERS, ERROR_CODE } from '@backchannel/contracts';
import { INTERNAL_TOKEN } from '../support/mesh.js';
import type { Answer, FuzzClient } from './fuzz-client.js';
import type { Fixtures, FuzzService } from './fuzz-mesh.js';

/**
 * Well-formed requests interleaved with the fuzzing, each answered exactly as the contract
 * says. All of them read, or repeat something already done (CONTRACT.md makes those
 * idempotent), so they write nothing and the "nothing changed" check stays exact.
 * A control returns what was wrong, or undefined.
 */
export type Control = (client: FuzzClient) => Promise<string | undefined>;

const json = (answer: Answer): any => {
  try {
    return JSON.parse(answer.text);
  } catch {
    return undefined;
  }
};

function expectAnswer(
  name: string,
  answer: Answer,
  status: number,
  check: (body: any) => boolean = () => true,
): string | undefined {
  if (answer.status === status && check(json(answer))) return undefined;
  return `${name}: expected ${status}, got ${answer.status ?? answer.missing} ${answer.text.slice(0, 300)}`;
}

/** Free-form JSON keyed with the names of Object.prototype members: kept like any other. */
const PROTOTYPE_KEYED = { constructor: 1, hasOwnProperty: 'x', toString: { valueOf: [1] } };

export function controls(f: Fixtures, nats: (subject: string, body: unknown) => Promise<any>): Control[] {
  const internal = { authorization: `Bearer ${INTERNAL_TOKEN}`, 'content-type': 'application/json' };
  const tenant = { authorization: `Bearer ${f.keys.a.api_key}` };
  const conversation = encodeURIComponent(f.conversations.active);
  const send = (client: FuzzClient, service: FuzzService, method: string, path: string, headers = {}, body?: string) =>
    client.http({ service, method, path, headers, ...(body !== undefined ? { body } : {}) });
  const noSecret = (answer: Answer) =>
    f.secrets.some((secret) => answer.text.includes(secret)) ? 'a secret in the answer' : undefined;

  return [
    async (client) => {
      const answer = await send(
        client,
        'token-authority',
        'GET',
        `/internal/v1/work-items/${f.items.pendingTool.work_item_id}`,
        internal,
      );
      return (
        expectAnswer(
          'read a pending work item',
          answer,
          200,
          (b) => b?.state === 'pending' && b.work_item_id === f.items.pendingTool.work_item_id,
        ) ?? noSecret(answer)
      );
    },
    async (client) =>
      expectAnswer(
        'read the completed work item',
        await send(
          client,
          'token-authority',
          'GET',
          `/internal/v1/work-items/${f.items.completed.work_item_id}`,
          internal,
        ),
        200,
        (b) => b?.state === 'completed',
      ),
    async (client) =>
      expectAnswer(
        'open an open conversation again',
        await send(
          client,
          'token-authority',
          'POST',
          '/internal/v1/conversations',
          internal,
          JSON.stringify({ conversation_id: f.conversations.active, tenant_id: f.tenantA, metadata: PROTOTYPE_KEYED }),
        ),
        200,
        (b) => b?.state === 'active' && b.tenant_id === f.tenantA,
      ),
    async (client) =>
      expectAnswer(
        'end an ended conversation again',
        await send(
          client,
          'token-authority',
          'POST',
          `/internal/v1/conversations/${encodeURIComponent(f.conversations.ended)}/end`,
          internal,
          '{}',
        ),
        200,
        (b) => b?.state === 'ended',
      ),
    async (client) =>
      expectAnswer(
        'cancel a cancelled work item again',
        await send(
          client,
          'token-authority',
          'POST',
          `/internal/v1/work-items/${f.items.cancelled.work_item_id}/cancel`,
          { authorization: internal.authorization },
        ),
        200,
        (b) => b?.state === 'cancelled',
      ),
    async (client) =>
      expectAnswer(
        'revoke a revoked key again',
        await send(client, 'token-authority', 'POST', `/internal/v1/api-keys/${f.keys.revoked.key_id}/revoke`, {
          authorization: internal.authorization,
        }),
        200,
        (b) => b?.state === 'revoked',
      ),
    async (client) =>
      expectAnswer(
        'retry a registration with its idempotency key',
        await send(
          client,
          'token-authority',
          'POST',
          '/internal/v1/work-items',
          internal,
          JSON.stringify({
            conversation_id: f.conversations.active,
            kind: 'tool',
            ordered: false,
            timeout_ms: 3_600_000,
            idempotency_key: f.items.idempotent.idempotencyKey,
          }),
        ),
        200,
        (b) => b?.work_item_id === f.items.idempotent.work_item_id,
      ),
    async (client) => {
      const answer = await send(
        client,
        'callback-ingress',
        'POST',
        `/api/v1/webhooks/${f.items.completed.work_item_id}`,
        { 'content-type': 'application/json', [CONTRACT_HEADERS.callbackToken]: f.items.completed.token },
        f.items.completed.body,
      );
      return (
        expectAnswer('replay the accepted callback', answer, 200, (b) => b?.duplicate === true) ?? noSecret(answer)
      );
    },
    async (client) => {
      const answer = await send(
        client,
        'callback-ingress',
        'POST',
        `/api/v1/webhooks/${f.items.cancelled.work_item_id}`,
        { 'content-type': 'application/json', [CONTRACT_HEADERS.callbackToken]: f.items.cancelled.token },
        '{"result":1}',
      );
      return expectAnswer(
        'a callback for a cancelled item',
        answer,
        410,
        (b) => b?.errors?.[0]?.code === ERROR_CODE.work_item_closed,
      );
    },
    async (client) =>
      expectAnswer(
        'read the transcript',
        await send(
          client,
          'conversation-injector',
          'GET',
          `/api/v1/conversations/${conversation}/messages?after=0&limit=10`,
          tenant,
        ),
        200,
        (b) =>
          f.added.positions.every((p) => b?.messages?.some((m: { position: number }) => m.position === p)) &&
          typeof b.next_after === 'number',
      ),
    async (client) => {
      const answer = await send(
        client,
        'conversation-injector',
        'GET',
        `/api/v1/conversations/${conversation}/events`,
        tenant,
      );
      if (
        answer.status === 200 &&
        answer.contentType?.startsWith('text/event-stream') &&
        answer.text.includes(': ready')
      )
        return undefined;
      return `follow live: expected 200 event-stream with ': ready', got ${answer.status} ${answer.contentType} ${answer.text.slice(0, 200)}`;
    },
    async (client) =>
      expectAnswer(
        'retry Add Messages with its Idempotency-Key',
        await send(
          client,
          'conversation-injector',
          'POST',
          `/api/v1/conversations/${conversation}/messages`,
          { ...tenant, 'content-type': 'application/json', [CONTRACT_HEADERS.idempotencyKey]: f.added.idempotencyKey },
          f.added.body,
        ),
        200,
        (b) =>
          JSON.stringify(b?.messages?.map((m: { position: number }) => m.position)) ===
          JSON.stringify(f.added.positions),
      ),
    async (client) =>
      expectAnswer(
        "another tenant's conversation",
        await send(
          client,
          'conversation-injector',
          'GET',
          `/api/v1/conversations/${encodeURIComponent(f.conversations.foreign)}/messages`,
          tenant,
        ),
        404,
        (b) => b?.errors?.[0]?.code === ERROR_CODE.not_found,
      ),
    async (client) =>
      expectAnswer(
        'a tool on a private network',
        await send(
          client,
          'tool-dispatcher',
          'POST',
          '/internal/v1/tool-invocations',
          internal,
          JSON.stringify({
            conversation_id: f.conversations.active,
            call_control_id: 'v3:control',
            tool: { url: 'http://10.1.2.3/tool', mode: 'async' },
            arguments: PROTOTYPE_KEYED,
          }),
        ),
        400,
        (b) => b?.errors?.[0]?.source?.pointer === '/tool/url',
      ),
    async () => {
      const reply = await nats(API_SUBJECTS.workItemsGet, { work_item_id: f.items.pendingTool.work_item_id });
      return reply?.state === 'pending' ? undefined : `bc.v1.work-items.get: ${JSON.stringify(reply)}`;
    },
    async () => {
      const reply = await nats(API_SUBJECTS.messagesList, { conversation_id: f.conversations.active, limit: 5 });
      return Array.isArray(reply?.messages) && reply.messages.length > 0
        ? undefined
        : `messages.list: ${JSON.stringify(reply).slice(0, 300)}`;
    },
  ];
}
