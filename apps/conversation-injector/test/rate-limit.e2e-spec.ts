import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  API_SUBJECTS,
  CONTRACT_HEADERS,
  ERROR_CODE,
  ERROR_CODES,
  statusOf,
  type InjectedMessage,
} from '@backchannel/contracts';
import { eventually } from '@backchannel/testing';
import { InjectorHarness } from './injector-harness.js';
import { streamingGet } from './sse-client.js';

/** Requests per second per key: low, so a test reaches it within one window. */
const LIMIT = 3;

type Answer = { status: number; body: any; headers: Pick<Headers, 'get'> };

describe('conversation injector: the tenant API rate limit (INJECTOR_RATE_LIMIT_PER_KEY)', () => {
  let h: InjectorHarness;

  beforeAll(async () => {
    h = await InjectorHarness.start({}, { INJECTOR_RATE_LIMIT_PER_KEY: String(LIMIT) });
  });

  afterAll(async () => {
    await h?.stop();
  });

  const messagesPath = (id: string) => `/api/v1/conversations/${id}/messages`;
  const eventsUrl = (id: string) => `${h.url}/api/v1/conversations/${id}/events`;

  async function conversation(tenant: string): Promise<{ id: string; key: string }> {
    const id = h.id();
    await h.platform.openConversation(id, tenant);
    return { id, key: (await h.apiKey(tenant)).api_key };
  }

  /**
   * Sends one request after another until one is refused; returns it and those that passed.
   * At most LIMIT pass in one second, so the refusal comes within the first window.
   */
  async function untilRefused(send: () => Promise<Answer>): Promise<{ refused: Answer; passed: Answer[] }> {
    const passed: Answer[] = [];
    const refused = await eventually(async () => {
      const answer = await send();
      if (answer.status !== statusOf(ERROR_CODE.rate_limited)) passed.push(answer);
      expect(answer.status).toBe(statusOf(ERROR_CODE.rate_limited));
      return answer;
    });
    return { refused, passed };
  }

  /**
   * Keeps sending in the background, so the caller's bucket stays over the limit in every
   * window; `statuses` records each answer.
   */
  function flood(send: () => Promise<Answer>): { statuses: number[]; stop(): Promise<void> } {
    const statuses: number[] = [];
    let running = true;
    const loop = (async () => {
      while (running) statuses.push((await send()).status);
    })();
    return {
      statuses,
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  /** Runs `during` while `send` floods, and proves the flood was refused before and after it. */
  async function whileLimited<T>(send: () => Promise<Answer>, during: () => Promise<T>): Promise<T> {
    const flooding = flood(send);
    const limited = statusOf(ERROR_CODE.rate_limited);
    try {
      await eventually(() => expect(flooding.statuses).toContain(limited), { message: 'the flood refused' });
      const result = await during();
      const seen = flooding.statuses.length;
      await eventually(() => expect(flooding.statuses.slice(seen)).toContain(limited), {
        message: 'the flood still refused afterwards',
      });
      return result;
    } finally {
      await flooding.stop();
    }
  }

  /** The transcript over NATS (`messages.list`: the platform's read, which the tenant limit does not touch). */
  async function transcript(id: string): Promise<InjectedMessage[]> {
    const reply = await h.nc.request(API_SUBJECTS.messagesList, JSON.stringify({ conversation_id: id, after: 0 }), {
      timeout: 5_000,
    });
    return reply.json<{ messages: InjectedMessage[] }>().messages;
  }

  function expectRateLimited(answer: Answer): void {
    expect(answer.status).toBe(statusOf(ERROR_CODE.rate_limited));
    expect(answer.body.errors).toHaveLength(1);
    expect(answer.body.errors[0]).toMatchObject({
      code: ERROR_CODE.rate_limited,
      title: ERROR_CODES.rate_limited.title,
      detail: expect.any(String),
      meta: { request_id: expect.any(String) },
    });
    expect(answer.headers.get(CONTRACT_HEADERS.retryAfter)).toMatch(/^[1-9]\d*$/);
  }

  it('past the limit, Add Messages answers 429 rate_limited in the envelope with Retry-After, and injects nothing for it', async () => {
    const { id, key } = await conversation('tenant-a');
    const add = () => h.api('POST', messagesPath(id), { key, body: { messages: [{ role: 'user', content: 'hi' }] } });

    const { refused, passed } = await untilRefused(add);

    expectRateLimited(refused);
    expect(passed.length).toBeGreaterThan(0);
    for (const answer of passed) expect(answer.status).toBe(202);
    expect((await transcript(id)).map((message) => message.position)).toEqual(passed.map((_, i) => i + 1));
    expect(JSON.stringify(refused.body)).not.toContain(key);
    expect(h.injector.logs.lines.join('\n')).not.toContain(key);
  });

  it('reading the transcript is limited the same way', async () => {
    const { id, key } = await conversation('tenant-a');
    const { refused } = await untilRefused(() => h.api('GET', messagesPath(id), { key }));
    expectRateLimited(refused);
  });

  it("another key, of the same tenant or another, is not limited by one key's traffic", async () => {
    const flooded = await conversation('tenant-b');
    const sibling = (await h.apiKey('tenant-b')).api_key;
    const stranger = await conversation('tenant-c');

    const others = await whileLimited(
      () => h.api('GET', messagesPath(flooded.id), { key: flooded.key }),
      async () => {
        const answers: Answer[] = [];
        for (let i = 0; i < LIMIT; i++) {
          answers.push(await h.api('GET', messagesPath(flooded.id), { key: sibling }));
          answers.push(await h.api('GET', messagesPath(stranger.id), { key: stranger.key }));
        }
        return answers;
      },
    );

    expect(others.map((answer) => answer.status)).toEqual(Array(2 * LIMIT).fill(200));
  });

  it('requests without a valid key count per client address: 401 first, 429 past the limit, and a valid key still passes', async () => {
    const { id, key } = await conversation('tenant-d');
    const unknownKey = `bck_${'Z'.repeat(43)}`;
    const withUnknownKey = () => h.api('GET', messagesPath(id), { key: unknownKey });

    const first = await withUnknownKey();
    expect(first.status).toBe(statusOf(ERROR_CODE.unauthorized));
    expect(first.body.errors[0].code).toBe(ERROR_CODE.unauthorized);

    const { refused } = await untilRefused(withUnknownKey);
    expectRateLimited(refused);
    const noKey = await untilRefused(() => h.api('GET', messagesPath(id)));
    expectRateLimited(noKey.refused);

    const valid = await whileLimited(withUnknownKey, async () => {
      const answers: Answer[] = [];
      for (let i = 0; i < LIMIT; i++) answers.push(await h.api('GET', messagesPath(id), { key }));
      return answers;
    });
    expect(valid.map((answer) => answer.status)).toEqual(Array(LIMIT).fill(200));
  });

  describe('Server-Sent Events', () => {
    /** Opens a stream; a refused one is read to its end (an error envelope), an open one is kept. */
    async function openStream(id: string, key: string) {
      const controller = new AbortController();
      const response = await streamingGet(eventsUrl(id), {
        headers: { authorization: `Bearer ${key}` },
        signal: controller.signal,
      });
      let text = '';
      const decoder = new TextDecoder();
      const done = (async () => {
        try {
          for await (const chunk of response.body) text += decoder.decode(chunk, { stream: true });
        } catch {
          // aborted
        }
      })();
      return { response, done, text: () => text, close: () => controller.abort() };
    }

    it('a stream counts once, when it opens: opening past the limit is 429, and an open stream keeps delivering while its key is limited', async () => {
      const { id, key } = await conversation('tenant-e');
      const writer = (await h.apiKey('tenant-e')).api_key;
      const following = await openStream(id, key);
      expect(following.response.status).toBe(200);
      await eventually(() => expect(following.text()).toContain(': ready'));

      const { refused } = await untilRefused(async () => {
        const stream = await openStream(id, key);
        if (stream.response.status === 200) stream.close();
        await stream.done;
        const text = stream.text();
        return { status: stream.response.status, headers: stream.response.headers, body: text && JSON.parse(text) };
      });
      expectRateLimited(refused);

      await whileLimited(
        () => h.api('GET', messagesPath(id), { key }),
        async () => {
          const added = await h.api('POST', messagesPath(id), {
            key: writer,
            body: { messages: [{ role: 'system', content: 'still delivered' }] },
          });
          expect(added.status).toBe(202);
          await eventually(() => expect(following.text()).toContain('still delivered'));
        },
      );
      following.close();
    });
  });
});
