import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, freePort, type NatsServerHandle } from '@backchannel/testing';
import { http, startNatsServer, testEnv } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';
import { ProcessMesh, ServiceProcess } from '../support/process-mesh.js';
import { ReleaseWatcher } from '../support/releases.js';

const CRASH_POINT = 'token_authority.after_registration_append';

/**
 * Issue 3: `sequence` is 1, 2, 3… with no gap and no repeat "even if [a token authority]
 * dies mid-registration". The token authority (a real process from dist/) kills itself with
 * SIGKILL right after the registration is appended to the conversation's log, before its
 * record and its answer: the worst moment, since the sequence is taken but nobody heard.
 */
describe('token authority killed -9 in the middle of a registration', () => {
  let nats: NatsServerHandle;
  let mesh: ProcessMesh;
  let watcher: ReleaseWatcher;
  const authorities: ServiceProcess[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    mesh = await ProcessMesh.start(nats, { 'callback-ingress': 1, 'ordering-sequencer': 1 });
    watcher = await ReleaseWatcher.start(nats.url);
  });

  afterAll(async () => {
    await Promise.all(authorities.map((authority) => authority.terminate().catch(() => undefined)));
    await watcher?.close();
    await mesh?.stop();
    await nats?.cleanup();
  });

  async function startAuthority(port: number, extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const authority = new ServiceProcess('token-authority', port, { ...testEnv(nats, extra), LOG_LEVEL: 'warn' });
    authorities.push(authority);
    await authority.start();
    return authority;
  }

  /** A registration sent to a token authority that dies on it: the connection drops, no answer. */
  async function registerIntoCrash(url: string, body: Record<string, unknown>): Promise<void> {
    const cut = await http('POST', `${url}/internal/v1/work-items`, { internal: true, body }).then(
      (answer) => new Error(`expected the connection to drop, got ${answer.status}`),
      (error: unknown) => error,
    );
    expect(String(cut)).toMatch(/fetch failed/);
  }

  it('a retry with the same idempotency_key finishes the same work item: its sequence, a working token', async () => {
    const port = await freePort();
    const crashing = await startAuthority(port, { BACKCHANNEL_CRASH_POINT: CRASH_POINT });
    const conversation = 'register-crash-key';
    await new PlatformClient(crashing.url).openConversation(conversation);
    await registerIntoCrash(crashing.url, { conversation_id: conversation, kind: 'tool', idempotency_key: 'k-1' });
    expect(await crashing.process.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const fresh = await startAuthority(port);
    const retry = await http('POST', `${fresh.url}/internal/v1/work-items`, {
      internal: true,
      body: { conversation_id: conversation, kind: 'tool', idempotency_key: 'k-1' },
    });
    expect(retry.status).toBe(200);
    expect(retry.body.sequence).toBe(1);
    const platform = new PlatformClient(fresh.url);
    const next = await platform.register(conversation);
    expect(next.sequence).toBe(2);

    const token = retry.body.callback.headers['x-callback-token'];
    const posted = await postCallback(mesh.of('callback-ingress').url, retry.body.work_item_id, token, { result: 1 });
    expect(posted.status).toBe(202);
    await eventually(() => expect(watcher.of(conversation).map((r) => r.source.sequence)).toEqual([1]));
  });

  it('without an idempotency_key the taken sequence is not reused: the unanswered item times out at its place', async () => {
    const port = await freePort();
    const crashing = await startAuthority(port, { BACKCHANNEL_CRASH_POINT: CRASH_POINT });
    const conversation = 'register-crash-plain';
    await new PlatformClient(crashing.url).openConversation(conversation);
    await registerIntoCrash(crashing.url, { conversation_id: conversation, kind: 'tool', timeout_ms: 1_000 });
    await crashing.process.exited;

    const platform = new PlatformClient((await startAuthority(port)).url);
    const retried = await platform.register(conversation);
    // A new work item: the first one was appended (sequence 1 is taken) but never answered.
    expect(retried.sequence).toBe(2);
    expect(
      (await postCallback(mesh.of('callback-ingress').url, retried.work_item_id, retried.token, { result: 2 })).status,
    ).toBe(202);
    const released = await eventually(
      () => {
        const releases = watcher.of(conversation);
        expect(releases).toHaveLength(2);
        return releases;
      },
      { timeoutMs: 15_000 },
    );
    expect(released.map((r) => [r.source.sequence, r.source.type])).toEqual([
      [1, 'timeout'],
      [2, 'callback'],
    ]);
  });
});
