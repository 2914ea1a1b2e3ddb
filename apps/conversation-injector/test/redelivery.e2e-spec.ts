import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { API_SUBJECTS, type InjectedMessage } from '@backchannel/contracts';
import { eventually } from '@backchannel/testing';
import { http } from '../../../test/support/mesh.js';
import { InjectorHarness } from './injector-harness.js';

const CONVERSATIONS = 20;
const RELEASES_PER_CONVERSATION = 100;

describe('conversation injector: exactly once through redeliveries and a broker restart', () => {
  let h: InjectorHarness;

  beforeAll(async () => {
    h = await InjectorHarness.start();
  });

  afterAll(async () => {
    await h?.stop();
  });

  /** Publishes, retrying while the broker is away (the test's client reconnects like the services). */
  async function publish(conversationId: string, index: number, msgId?: string): Promise<void> {
    await eventually(() => h.release(conversationId, index, {}, msgId), { timeoutMs: 30_000, message: 'publish' });
  }

  async function transcript(conversationId: string): Promise<InjectedMessage[]> {
    const all: InjectedMessage[] = [];
    for (let after = 0; ;) {
      const reply = await h.nc.request(
        API_SUBJECTS.messagesList,
        JSON.stringify({ conversation_id: conversationId, after, limit: 1_000 }),
        { timeout: 5_000 },
      );
      const page = reply.json<{ messages: InjectedMessage[]; next_after: number | null }>();
      if (!page.messages) throw new Error(JSON.stringify(page));
      if (page.messages.length === 0) return all;
      all.push(...page.messages);
      after = page.next_after!;
    }
  }

  it(`injects ${CONVERSATIONS * RELEASES_PER_CONVERSATION} releases with duplicates exactly once, in order, across a restart`, async () => {
    const conversations = Array.from({ length: CONVERSATIONS }, () => h.id('burst'));
    for (const id of conversations) await h.platform.openConversation(id, 'tenant-r');

    let duplicates = 0;
    for (let index = 1; index <= RELEASES_PER_CONVERSATION; index++) {
      for (const [n, id] of conversations.entries()) {
        await publish(id, index);
        // Every few releases, an earlier one again: as a redelivered copy (another message id,
        // so the broker keeps it) and as a retried publish (same id, dropped by the broker).
        if ((index + n) % 7 === 0) {
          await publish(id, Math.max(1, index - ((index + n) % 5)), `again-${id}-${index}`);
          duplicates++;
        }
        if ((index + n) % 11 === 0) await publish(id, index);
      }
      if (index === RELEASES_PER_CONVERSATION / 2) {
        await h.nats.restart();
      }
    }
    expect(duplicates).toBeGreaterThan(200);

    await eventually(
      async () => {
        for (const id of conversations) {
          const messages = await transcript(id);
          expect(messages.length).toBe(RELEASES_PER_CONVERSATION);
          expect(messages.map((m) => m.position)).toEqual(range(RELEASES_PER_CONVERSATION));
          expect(messages.map((m) => (m.result as { n: number }).n)).toEqual(range(RELEASES_PER_CONVERSATION));
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, message: 'every transcript complete' },
    );
    const metrics = await http('GET', `${h.url}/metrics`);
    const redeliveries = /backchannel_release_redeliveries_total\{[^}]*\} (\d+)/.exec(metrics.body as string);
    expect(Number(redeliveries?.[1])).toBeGreaterThanOrEqual(duplicates);
  });
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
