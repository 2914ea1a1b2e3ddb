import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { BUCKETS, LEASES_BUCKET, STREAMS } from '@backchannel/contracts';
import { WorkLedger } from '@backchannel/messaging';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../../apps/tool-dispatcher/src/tool-dispatcher.service-definition.js';
import { INTERNAL_TOKEN, http, startNatsServer, startTestService, type TestService } from '../support/mesh.js';

export type FuzzService = 'token-authority' | 'callback-ingress' | 'conversation-injector' | 'tool-dispatcher';
export const FUZZ_SERVICES: readonly FuzzService[] = [
  'token-authority',
  'callback-ingress',
  'conversation-injector',
  'tool-dispatcher',
];

/** A registered work item as the fixtures hold it. */
export interface FixtureItem {
  work_item_id: string;
  token: string;
  kind: 'tool' | 'llm';
}

export interface FixtureKey {
  api_key: string;
  key_id: string;
}

/**
 * What the fuzzing aims at: every state a request can meet (CONTRACT.md §2–§4). Built once,
 * before the "before" snapshot; the fuzzing must leave all of it exactly as it is.
 */
export interface Fixtures {
  tenantA: string;
  tenantB: string;
  /** Tenant A's key, tenant B's key, a revoked key of tenant A, and an active key only ever sent to revoke. */
  keys: { a: FixtureKey; b: FixtureKey; revoked: FixtureKey; victim: FixtureKey };
  conversations: {
    /** Tenant A's open conversation, with messages, a completed, a cancelled and pending items. */
    active: string;
    /** Tenant B's open conversation. */
    foreign: string;
    /** Tenant A's ended conversation, which still has an item (cancelled by the end). */
    ended: string;
    /** Tenant A's open conversation that only ever receives refused end requests. */
    victim: string;
  };
  items: {
    pendingTool: FixtureItem;
    pendingLlm: FixtureItem;
    /** Pending; only ever the target of refused cancels. */
    victim: FixtureItem;
    /** Its result was accepted (body below); replays answer 200, other bodies 409. */
    completed: FixtureItem & { body: string };
    cancelled: FixtureItem;
    /** Of the ended conversation: cancelled by the end. */
    ofEnded: FixtureItem;
    /** Registered with this idempotency key: a retry answers 200 with the same item. */
    idempotent: FixtureItem & { idempotencyKey: string };
  };
  /** An Add Messages already answered: the same key and body again answer 200 with the same messages. */
  added: { idempotencyKey: string; body: string; positions: number[] };
  /** Every secret of the fixtures: none may ever appear in a refusal. */
  secrets: string[];
}

/** The figures that show whether anything was written: the last sequence of every stream and bucket. */
export type StateSnapshot = Record<string, number>;

const FUZZ_ENV = {
  LOG_LEVEL: 'warn',
  INGRESS_RATE_LIMIT_PER_SOURCE: '1000000',
  INJECTOR_RATE_LIMIT_PER_KEY: '1000000',
  // Tool URLs on loopback and private networks are refused: every invocation the fuzzing
  // sends names one (or is invalid before that), so nothing ever leaves the machine.
  DISPATCHER_ALLOW_PRIVATE_NETWORKS: 'false',
  CALLBACK_MAX_BODY_BYTES: '65536',
};

/** Every service of the mesh in this process against a private broker, with the fixtures in place. */
export class FuzzMesh {
  private constructor(
    readonly nats: NatsServerHandle,
    readonly services: Record<FuzzService | 'ordering-sequencer', TestService>,
    readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    readonly fixtures: Fixtures,
  ) {}

  static async start(): Promise<FuzzMesh> {
    const nats = await startNatsServer();
    const ingress = await startTestService(CALLBACK_INGRESS, nats, FUZZ_ENV);
    const env = { ...FUZZ_ENV, PUBLIC_BASE_URL: ingress.service.url };
    const services = {
      'callback-ingress': ingress,
      'token-authority': await startTestService(TOKEN_AUTHORITY, nats, env),
      'ordering-sequencer': await startTestService(ORDERING_SEQUENCER, nats, env),
      'conversation-injector': await startTestService(CONVERSATION_INJECTOR, nats, env),
      'tool-dispatcher': await startTestService(TOOL_DISPATCHER, nats, env),
    };
    const nc = await connect({ servers: nats.url });
    const fixtures = await seed(services['token-authority'].service.url, ingress.service.url, services);
    return new FuzzMesh(nats, services, nc, await jetstreamManager(nc), fixtures);
  }

  url(service: FuzzService): string {
    return this.services[service].service.url;
  }

  port(service: FuzzService): number {
    return this.services[service].service.port;
  }

  /** The work log as the token authority reads it: what was stored for a conversation or an item. */
  ledger(): WorkLedger {
    const { nats, config } = this.services['token-authority'].service.context;
    return new WorkLedger(nats.js, nats.reads, config.SEQUENCER_PARTITIONS);
  }

  async stop(): Promise<void> {
    await this.nc.close().catch(() => undefined);
    for (const service of Object.values(this.services)) await service.service.stop().catch(() => undefined);
    await this.nats.cleanup();
  }

  /**
   * Last sequences of the streams and of the buckets that only requests write. The leases
   * bucket is left out: partition leases, replica heartbeats and checkpoints are rewritten
   * every round whatever arrives.
   */
  async snapshot(): Promise<StateSnapshot> {
    const snapshot: StateSnapshot = {};
    for (const spec of STREAMS) snapshot[spec.name] = (await this.jsm.streams.info(spec.name)).state.last_seq;
    const kvm = new Kvm(this.nc);
    for (const spec of BUCKETS.filter((bucket) => bucket !== LEASES_BUCKET)) {
      snapshot[spec.bucket] = (await (await kvm.open(spec.bucket)).status()).streamInfo.state.last_seq;
    }
    return snapshot;
  }

  /** Waits until nothing has been written for `quietMs`: the fixtures' effects have all landed. */
  async settle(quietMs = 3_000, timeoutMs = 60_000): Promise<StateSnapshot> {
    let last = await this.snapshot();
    let since = Date.now();
    return eventually(
      async () => {
        const now = await this.snapshot();
        if (!sameSnapshot(now, last)) {
          last = now;
          since = Date.now();
        }
        if (Date.now() - since < quietMs) throw new Error(`still writing: ${JSON.stringify(now)}`);
        return now;
      },
      { timeoutMs, intervalMs: 250, message: 'the mesh settled' },
    );
  }

  /** What was written to the streams since `before`, subject by subject (for the report). */
  async writesSince(before: StateSnapshot): Promise<string[]> {
    const after = await this.snapshot();
    const writes: string[] = [];
    for (const spec of STREAMS) {
      for (let seq = before[spec.name] + 1; seq <= after[spec.name]; seq++) {
        const message = await this.jsm.streams.getMessage(spec.name, { seq }).catch(() => null);
        if (message) writes.push(`${spec.name}#${seq} ${message.subject} ${message.string().slice(0, 300)}`);
      }
    }
    for (const [name, seq] of Object.entries(after)) {
      if (!STREAMS.some((spec) => spec.name === name) && seq !== before[name]) {
        writes.push(`bucket ${name}: last sequence ${before[name]} -> ${seq}`);
      }
    }
    return writes;
  }

  /** Secrets, and the service logs' lines holding one (none may). */
  leakedInLogs(): string[] {
    const secrets = [...this.fixtures.secrets, INTERNAL_TOKEN];
    return Object.entries(this.services).flatMap(([name, service]) =>
      service.logs.lines
        .filter((line) => secrets.some((secret) => line.includes(secret)))
        .map((line) => `${name}: ${line}`),
    );
  }

  /** Log lines of unexpected errors (each is a 500 the filter rendered). */
  unexpectedErrorsInLogs(): string[] {
    return Object.entries(this.services).flatMap(([name, service]) =>
      service.logs.lines
        .filter((line) => line.includes('unexpected error'))
        .map((line) => `${name}: ${line.slice(0, 500)}`),
    );
  }
}

export function sameSnapshot(a: StateSnapshot, b: StateSnapshot): boolean {
  return Object.keys(a).every((name) => a[name] === b[name]);
}

/** Messages written between two snapshots, over every stream and bucket. */
export function writesBetween(before: StateSnapshot, after: StateSnapshot): number {
  return Object.keys(after).reduce((sum, name) => sum + Math.max(0, after[name] - before[name]), 0);
}

async function seed(taUrl: string, ingressUrl: string, services: Record<string, TestService>): Promise<Fixtures> {
  const internal = async (method: string, path: string, body?: unknown, expected = [200, 201]) => {
    const answer = await http(method, `${taUrl}/internal/v1${path}`, { internal: true, body });
    if (!expected.includes(answer.status))
      throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const tenantA = 'fz-tenant-a';
  const tenantB = 'fz-tenant-b';
  const key = async (tenant: string): Promise<FixtureKey> => {
    const { api_key, key_id } = await internal('POST', '/api-keys', { tenant_id: tenant });
    return { api_key, key_id };
  };
  const keys = {
    a: await key(tenantA),
    b: await key(tenantB),
    revoked: await key(tenantA),
    victim: await key(tenantA),
  };
  await internal('POST', `/api-keys/${keys.revoked.key_id}/revoke`);

  const conversations = { active: 'fz:active', foreign: 'fz:foreign', ended: 'fz:ended', victim: 'fz:victim' };
  for (const [name, id] of Object.entries(conversations)) {
    await internal('POST', '/conversations', {
      conversation_id: id,
      tenant_id: name === 'foreign' ? tenantB : tenantA,
    });
  }
  // No deadline may write anything while the fuzzing runs: every item gets the longest timeout.
  const register = async (conversation: string, kind: 'tool' | 'llm' = 'tool', extra: object = {}) => {
    const body = await internal('POST', '/work-items', {
      conversation_id: conversation,
      kind,
      ordered: false,
      timeout_ms: 3_600_000,
      ...extra,
    });
    return { work_item_id: body.work_item_id, token: body.callback.headers['x-callback-token'], kind };
  };
  const idempotencyKey = 'fz-registration-key';
  const items = {
    pendingTool: await register(conversations.active),
    pendingLlm: await register(conversations.active, 'llm'),
    victim: await register(conversations.active),
    completed: {
      ...(await register(conversations.active)),
      body: JSON.stringify({ result: { fixture: 'completed' } }),
    },
    cancelled: await register(conversations.active),
    ofEnded: await register(conversations.ended),
    idempotent: {
      ...(await register(conversations.active, 'tool', { idempotency_key: idempotencyKey })),
      idempotencyKey,
    },
  };
  const callback = await fetch(`${ingressUrl}/api/v1/webhooks/${items.completed.work_item_id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-callback-token': items.completed.token },
    body: items.completed.body,
  });
  if (callback.status !== 202) throw new Error(`fixture callback: ${callback.status} ${await callback.text()}`);
  await internal('POST', `/work-items/${items.cancelled.work_item_id}/cancel`);
  await internal('POST', `/conversations/${encodeURIComponent(conversations.ended)}/end`, {});

  const addedKey = 'fz-add-messages-key';
  const addedBody = JSON.stringify({ messages: [{ role: 'user', content: 'fixture message' }] });
  const injectorUrl = services['conversation-injector'].service.url;
  const added = await fetch(
    `${injectorUrl}/api/v1/conversations/${encodeURIComponent(conversations.active)}/messages`,
    {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${keys.a.api_key}`,
        'idempotency-key': addedKey,
      },
      body: addedBody,
    },
  );
  if (added.status !== 202) throw new Error(`fixture messages: ${added.status} ${await added.text()}`);
  const positions = ((await added.json()) as { messages: { position: number }[] }).messages.map((m) => m.position);

  const secrets = [
    ...Object.values(keys).map((k) => k.api_key),
    ...Object.values(items).map((item) => item.token),
    INTERNAL_TOKEN,
  ];
  return {
    tenantA,
    tenantB,
    keys,
    conversations,
    items,
    added: { idempotencyKey: addedKey, body: addedBody, positions },
    secrets,
  };
}
