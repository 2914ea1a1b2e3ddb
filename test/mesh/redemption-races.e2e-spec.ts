import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ERROR_CODE } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { expectError } from '../support/answers.js';
import { startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';
import { mapConcurrent } from '../support/pool.js';
import { ReleaseWatcher } from '../support/releases.js';

/** A request a test sent, when, and what it was answered. */
interface Sent<T> {
  sentAt: number;
  answeredAt: number;
  answer: T;
}

/**
 * CONTRACT.md §2: a work item ends exactly once, whatever races. Two instances of each
 * service that enforces it, many concurrent callers, and a checker.
 */
describe('redemption and registration under concurrency', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingressUrls: string[];
  let platforms: PlatformClient[];
  let watcher: ReleaseWatcher;

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = { INGRESS_RATE_LIMIT_PER_SOURCE: '1000000' };
    const tas = [
      await startTestService(TOKEN_AUTHORITY, nats, env),
      await startTestService(TOKEN_AUTHORITY, nats, env),
    ];
    const ingresses = [
      await startTestService(CALLBACK_INGRESS, nats, env),
      await startTestService(CALLBACK_INGRESS, nats, env),
    ];
    const sequencer = await startTestService(ORDERING_SEQUENCER, nats, env);
    services = [...tas, ...ingresses, sequencer];
    ingressUrls = ingresses.map((ingress) => ingress.service.url);
    platforms = tas.map((ta) => new PlatformClient(ta.service.url));
    watcher = await ReleaseWatcher.start(nats.url);
  });

  afterAll(async () => {
    await watcher?.close();
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  it('1,000 tokens, each posted by 8 concurrent callers with different bodies: exactly one accepted each', async () => {
    const conversations = Array.from({ length: 20 }, (_, i) => `redeem-${i}`);
    for (const conversation of conversations) await platforms[0].openConversation(conversation);
    const items = await mapConcurrent(
      Array.from({ length: 1_000 }, (_, i) => i),
      16,
      (i) => platforms[i % 2].register(conversations[i % conversations.length], { ordered: false }),
    );
    const answers = await mapConcurrent(items, 8, (item) =>
      Promise.all(
        Array.from({ length: 8 }, (_, caller) =>
          postCallback(ingressUrls[caller % 2], item.work_item_id, item.token, { result: { caller } }),
        ),
      ),
    );
    const acceptedPerToken = answers.map((perToken) => perToken.filter((answer) => answer.status === 202).length);
    expect(acceptedPerToken.every((count) => count === 1)).toBe(true);
    const others = answers.flat().filter((answer) => answer.status !== 202);
    expect(new Set(others.map((answer) => answer.status))).toEqual(new Set([409]));
    // Every accepted result is released, once.
    await eventually(
      () => expect(watcher.releases.filter((r) => r.conversation_id.startsWith('redeem-'))).toHaveLength(1_000),
      {
        timeoutMs: 30_000,
      },
    );
    const released = watcher.releases.filter((r) => r.conversation_id.startsWith('redeem-'));
    expect(new Set(released.map((r) => r.source.work_item_id)).size).toBe(1_000);
  });

  it('100 concurrent registrations across two token authorities get sequences exactly 1..100', async () => {
    await platforms[0].openConversation('sequences');
    const registered = await Promise.all(Array.from({ length: 100 }, (_, i) => platforms[i % 2].register('sequences')));
    expect(registered.map((item) => item.sequence).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
  });

  it('callbacks at the deadline and concurrent cancels: one end per item, the losers see it, every 202 released', async () => {
    const conversation = 'races';
    await platforms[0].openConversation(conversation);
    // Every fourth item of each kind of race, 48 in all (timeout 1 s, unordered):
    // - "deadline": a callback somewhere in 500..1,150 ms, no cancel;
    // - "deadline+cancel": a callback and a cancel, both around the deadline;
    // - "cancel": a callback and a cancel sent together, well before the deadline;
    // - "after cancel": the callback sent as soon as the cancel answered.
    const plans = ['deadline', 'deadline+cancel', 'cancel', 'after cancel'] as const;
    const items = await Promise.all(
      Array.from({ length: 48 }, () => platforms[0].register(conversation, { timeout_ms: 1_000, ordered: false })),
    );
    // Every deadline is at or before this + 1 s: a request sent later is past it, surely.
    const registeredAt = Date.now();
    const at = (offsetMs: number) =>
      new Promise((resolve) => setTimeout(resolve, Math.max(0, registeredAt + offsetMs - Date.now())));
    const timed = async <T>(send: () => Promise<T>) => {
      const sentAt = Date.now();
      const answer = await send();
      return { sentAt, answeredAt: Date.now(), answer };
    };
    const outcomes = await Promise.all(
      items.map(async (item, i) => {
        const plan = plans[i % plans.length];
        const step = Math.floor(i / plans.length);
        const postIt = () => postCallback(ingressUrls[i % 2], item.work_item_id, item.token, { result: i });
        const cancelIt = () => platforms[(i + 1) % 2].cancel(item.work_item_id);
        let callback: Promise<Sent<Awaited<ReturnType<typeof postIt>>>>;
        let cancel: Promise<Sent<Awaited<ReturnType<typeof cancelIt>>> | undefined>;
        switch (plan) {
          case 'deadline':
            callback = at(500 + step * 60).then(() => timed(postIt));
            cancel = Promise.resolve(undefined);
            break;
          case 'deadline+cancel':
            callback = at(900 + step * 20).then(() => timed(postIt));
            cancel = at(1_100 - step * 20).then(() => timed(cancelIt));
            break;
          case 'cancel':
            callback = at(300 + step * 20).then(() => timed(postIt));
            cancel = at(300 + step * 20).then(() => timed(cancelIt));
            break;
          case 'after cancel':
            cancel = at(300 + step * 20).then(() => timed(cancelIt));
            callback = cancel.then(() => timed(postIt));
            break;
        }
        const [callbackSent, cancelSent] = await Promise.all([callback, cancel]);
        return { item, plan, callbackSent, cancelSent };
      }),
    );

    // One end per item, and every answer agrees with it.
    await eventually(
      async () => {
        for (const { item, callbackSent, cancelSent } of outcomes) {
          const state = (await platforms[0].workItem(item.work_item_id)).state;
          const callbackAnswer = callbackSent.answer;
          const cancelAnswer = cancelSent?.answer;
          expect(['completed', 'cancelled', 'timed_out']).toContain(state);
          expect(callbackAnswer.status === 202 && cancelAnswer?.status === 200).toBe(false);
          if (callbackAnswer.status === 202) expect(state).toBe('completed');
          else expectError(callbackAnswer, 410, ERROR_CODE.work_item_closed);
          if (callbackAnswer.status === 410) expect(callbackAnswer.body.errors[0].meta.state).toBe(state);
          if (cancelAnswer?.status === 200) expect(state).toBe('cancelled');
          else if (cancelAnswer) expectError(cancelAnswer, 410, ERROR_CODE.work_item_closed);
          if (cancelAnswer?.status === 410) expect(cancelAnswer.body.errors[0].meta.state).toBe(state);
        }
      },
      { timeoutMs: 10_000 },
    );

    // What must have happened, whatever the timing: a callback or cancel sent after the
    // deadline lost (to it, or to an earlier end); one sent after the other was answered
    // lost to it (410 with the winner's state).
    for (const { item, callbackSent, cancelSent } of outcomes) {
      const deadline = Date.parse(item.expires_at);
      if (callbackSent.sentAt >= deadline) expect(callbackSent.answer.status).toBe(410);
      if (cancelSent && cancelSent.sentAt >= deadline) expect(cancelSent.answer.status).toBe(410);
      if (cancelSent?.answer.status === 200 && callbackSent.sentAt >= cancelSent.answeredAt) {
        expect(callbackSent.answer.body.errors[0].meta.state).toBe('cancelled');
      }
      if (cancelSent && callbackSent.answer.status === 202 && cancelSent.sentAt >= callbackSent.answeredAt) {
        expect(cancelSent.answer.body.errors[0].meta.state).toBe('completed');
      }
    }

    // Not vacuous: callbacks were accepted, and others lost to the deadline and to cancels.
    const callbackLosses = (state: string) =>
      outcomes.filter(
        (o) => o.callbackSent.answer.status === 410 && o.callbackSent.answer.body.errors[0].meta.state === state,
      );
    expect(outcomes.filter((o) => o.callbackSent.answer.status === 202).length).toBeGreaterThan(0);
    expect(callbackLosses('timed_out').length).toBeGreaterThan(0);
    expect(callbackLosses('cancelled').length).toBeGreaterThan(0);

    // Every 202 is released, once, and nothing else of a callback is.
    const accepted = outcomes.filter((o) => o.callbackSent.answer.status === 202).map((o) => o.item.work_item_id);
    await eventually(() => {
      const releasedCallbacks = watcher
        .of(conversation)
        .filter((r) => r.source.type === 'callback')
        .map((r) => r.source.work_item_id);
      expect(releasedCallbacks.sort()).toEqual([...accepted].sort());
    });
  });
});
