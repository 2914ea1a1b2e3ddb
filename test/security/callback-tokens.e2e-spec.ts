import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ManualClock, type NatsServerHandle } from '@backchannel/testing';
import { CallbackIngressModule } from '../../apps/callback-ingress/src/callback-ingress.module.js';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { TokenAuthorityModule } from '../../apps/token-authority/src/token-authority.module.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';

/**
 * The callback token as an attacker sees it (CONTRACT.md §1–§3): used, expired, cancelled
 * and ended tokens are refused; a token never works for another work item; no near-miss
 * of a valid token works. A clock the test moves stands in for waiting.
 */
describe('callback tokens under attack', () => {
  const clock = new ManualClock();
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingressUrl: string;
  let platform: PlatformClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = { INGRESS_RATE_LIMIT_PER_SOURCE: '1000000', REPLAY_TTL_MS: '60000' };
    const ta = await startTestService(
      { ...TOKEN_AUTHORITY, module: (c) => TokenAuthorityModule.register(c, clock) },
      nats,
      env,
    );
    const ingress = await startTestService(
      { ...CALLBACK_INGRESS, module: (c) => CallbackIngressModule.register(c, clock) },
      nats,
      env,
    );
    services = [ta, ingress];
    ingressUrl = ingress.service.url;
    platform = new PlatformClient(ta.service.url);
    await platform.openConversation('attack');
    await platform.openConversation('attack-other', 'tenant-b');
  });

  afterAll(async () => {
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  it('refuses used, expired, cancelled and ended tokens, and forgets them after the replay window', async () => {
    const used = await platform.register('attack');
    expect((await postCallback(ingressUrl, used.work_item_id, used.token, { result: 1 })).status).toBe(202);
    expect((await postCallback(ingressUrl, used.work_item_id, used.token, { result: 2 })).status).toBe(409);

    const expired = await platform.register('attack', { timeout_ms: 1_000 });
    const cancelled = await platform.register('attack');
    await platform.cancel(cancelled.work_item_id);
    clock.advance(1_000);
    const afterDeadline = await postCallback(ingressUrl, expired.work_item_id, expired.token, { result: 1 });
    expect(afterDeadline.status).toBe(410);
    expect(afterDeadline.body.errors[0].meta.state).toBe('timed_out');
    expect((await postCallback(ingressUrl, cancelled.work_item_id, cancelled.token, { result: 1 })).status).toBe(410);

    await platform.openConversation('attack-ended');
    const ended = await platform.register('attack-ended');
    await platform.endConversation('attack-ended');
    const afterEnd = await postCallback(ingressUrl, ended.work_item_id, ended.token, { result: 1 });
    expect(afterEnd.body.errors[0].code).toBe('conversation_ended');

    clock.advance(61_000);
    for (const item of [used, expired, cancelled, ended]) {
      const forgotten = await postCallback(ingressUrl, item.work_item_id, item.token, { result: 1 });
      expect(forgotten.status).toBe(401);
    }
  });

  it('never accepts a token for another work item, in any pairing', async () => {
    const items = await Promise.all([
      platform.register('attack'),
      platform.register('attack'),
      platform.register('attack-other'),
      platform.register('attack-other', { kind: 'llm' }),
    ]);
    for (const target of items) {
      for (const holder of items) {
        if (holder === target) continue;
        const answer = await postCallback(ingressUrl, target.work_item_id, holder.token, { result: 'stolen' });
        expect(answer.status).toBe(401);
        expect(answer.body.errors[0].code).toBe('invalid_token');
      }
    }
    for (const item of items) expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
  });

  it('never accepts a single-character mutation of a valid token', async () => {
    const item = await platform.register('attack');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    await fc.assert(
      fc.asyncProperty(fc.nat(item.token.length - 1), fc.constantFrom(...alphabet), async (index, char) => {
        fc.pre(item.token[index] !== char);
        const mutated = item.token.slice(0, index) + char + item.token.slice(index + 1);
        const answer = await postCallback(ingressUrl, item.work_item_id, mutated, { result: 'forged' });
        expect(answer.status).toBe(401);
      }),
      { numRuns: 300 },
    );
    expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
    expect((await postCallback(ingressUrl, item.work_item_id, item.token, { result: 'real' })).status).toBe(202);
  });
});
