import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EventSource } from 'eventsource';
import type { InjectedMessage } from '@backchannel/contracts';
import { eventually } from '@backchannel/testing';
import { http, startTestService, type TestService } from '../../../test/support/mesh.js';
import { InjectorHarness, injectorDefinition } from './injector-harness.js';
import { eventSourceFetch, streamingGet } from './sse-client.js';

const KEEP_ALIVE_MS = 150;

/** An EventSource (the `eventsource` package) that sends the tenant key and, optionally, Last-Event-ID. */
class Follow {
  readonly events: { id: string; data: InjectedMessage; type: string }[] = [];
  readonly opened: Promise<void>;
  private readonly source: EventSource;

  constructor(url: string, key: string, headers: Record<string, string> = {}) {
    this.source = new EventSource(url, {
      fetch: eventSourceFetch(key, headers),
    });
    this.source.onmessage = (event) =>
      this.events.push({ id: event.lastEventId, data: JSON.parse(event.data), type: event.type });
    this.opened = new Promise((resolve, reject) => {
      this.source.onopen = () => resolve();
      this.source.onerror = (error) => reject(new Error(`EventSource failed: ${String(error.message)}`));
    });
  }

  positions(): number[] {
    return this.events.map((event) => event.data.position);
  }

  close(): void {
    this.source.close();
  }
}

/** The raw stream, to see comment lines (EventSource hides them). */
async function rawStream(url: string, key: string) {
  const controller = new AbortController();
  const response = await streamingGet(url, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
  let text = '';
  let ended = false;
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of response.body) text += decoder.decode(chunk, { stream: true });
    } catch {
      // aborted
    }
    ended = true;
  })();
  return { response, text: () => text, ended: () => ended, close: () => controller.abort() };
}

describe('conversation injector: following live with Server-Sent Events (CONTRACT.md §4)', () => {
  let h: InjectorHarness;
  let key: string;
  const open: Follow[] = [];

  beforeAll(async () => {
    h = await InjectorHarness.start({ sseKeepAliveMs: KEEP_ALIVE_MS });
    key = (await h.apiKey('tenant-a')).api_key;
  });

  afterEach(() => {
    for (const follow of open.splice(0)) follow.close();
  });

  afterAll(async () => {
    await h?.stop();
  });

  async function conversation(): Promise<string> {
    const id = h.id();
    await h.platform.openConversation(id, 'tenant-a');
    return id;
  }

  const eventsUrl = (id: string, base = h.url) => `${base}/api/v1/conversations/${id}/events`;
  const add = async (id: string, ...contents: string[]) => {
    const answer = await h.api('POST', `/api/v1/conversations/${id}/messages`, {
      key,
      body: { messages: contents.map((content) => ({ role: 'user', content })) },
    });
    expect(answer.status).toBe(202);
    return answer.body.messages as InjectedMessage[];
  };
  const follow = (id: string, headers: Record<string, string> = {}, base = h.url, query = '') => {
    const follower = new Follow(`${eventsUrl(id, base)}${query}`, key, headers);
    open.push(follower);
    return follower;
  };

  it('answers text/event-stream, sends ": ready" once subscribed, then keep-alive comments', async () => {
    const id = await conversation();
    const stream = await rawStream(eventsUrl(id), key);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
    expect(stream.response.headers.get('cache-control')).toBe('no-cache');
    expect(stream.response.headers.get('x-accel-buffering')).toBe('no');
    await eventually(() => expect(stream.text().startsWith(': ready\n\n')).toBe(true));

    const [message] = await add(id, 'hello');
    await eventually(() => expect(stream.text()).toContain(`id: 1\ndata: ${JSON.stringify(message)}\n\n`));
    expect(stream.text()).not.toContain('event:');
    await eventually(() => expect(stream.text()).toMatch(/\n\n: keep-alive\n\n/));
    stream.close();
  });

  it('delivers each injected message once with id = position; resumes with Last-Event-ID exactly where it left off', async () => {
    const id = await conversation();
    const first = follow(id);
    await first.opened;
    await add(id, 'one', 'two');
    await h.release(id, 1);
    await add(id, 'four');
    await eventually(() => expect(first.positions()).toEqual([1, 2, 3, 4]));
    expect(first.events.map((event) => event.id)).toEqual(['1', '2', '3', '4']);
    expect(first.events.every((event) => event.type === 'message')).toBe(true);
    expect(first.events[2].data).toMatchObject({ role: 'tool', source: { type: 'callback' }, result: { n: 1 } });
    expect(first.events.map((e) => e.data)).toEqual(await h.transcript(id, key));

    // Disconnect mid-stream; what happens meanwhile is replayed on resume, then live, no repeat.
    first.close();
    await add(id, 'five', 'six');
    await h.release(id, 2);
    const resumed = follow(id, { 'last-event-id': '4' });
    await resumed.opened;
    await add(id, 'eight');
    await eventually(() => expect(resumed.positions()).toEqual([5, 6, 7, 8]));
    expect(resumed.events.map((e) => e.data.content ?? e.data.result)).toEqual(['five', 'six', { n: 2 }, 'eight']);

    const fromQuery = follow(id, {}, h.url, '?after=6');
    await eventually(() => expect(fromQuery.positions()).toEqual([7, 8]));
  });

  it('starts live without a resume point, and replays without gap or repeat while messages keep coming', async () => {
    const id = await conversation();
    await add(id, 'before');
    const live = follow(id);
    await live.opened;
    await add(id, 'after');
    await eventually(() => expect(live.positions()).toEqual([2]));

    // Appends racing with the replay: every position exactly once, in order.
    const writing = (async () => {
      for (let i = 0; i < 40; i++) await add(id, `m${i}`);
    })();
    const replaying = follow(id, { 'last-event-id': '0' });
    await writing;
    await eventually(() => expect(replaying.positions()).toEqual(range(42)));
    await eventually(() => expect(live.positions()).toEqual(range(42).slice(1)));
  });

  it('fills a gap in the live subject from the transcript', async () => {
    const id = await conversation();
    const follower = follow(id);
    await follower.opened;
    // Appended by "another writer" whose live publish was lost: only the transcript has it.
    await h.js.publish(
      `bc.transcript.${id}`,
      JSON.stringify({
        position: 1,
        conversation_id: id,
        role: 'user',
        source: { type: 'api' },
        content: 'unseen',
        delivery: 'when_idle',
        trace_id: '0af7651916cd43dd8448eb211c80319c',
        injected_at: new Date().toISOString(),
        applied_release_index: 0,
      }),
      { expect: { lastSubjectSequence: 0 } },
    );
    await add(id, 'seen');
    await eventually(() => expect(follower.events.map((e) => e.data.content)).toEqual(['unseen', 'seen']));
  });

  it('refuses a malformed Last-Event-ID, closes on revocation, and counts followers', async () => {
    const id = await conversation();
    const bad = await h.api('GET', `/api/v1/conversations/${id}/events`, { key, headers: { 'last-event-id': 'x' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].source).toEqual({ header: 'last-event-id' });

    const { api_key, key_id } = await h.apiKey('tenant-a');
    const stream = await rawStream(eventsUrl(id), api_key);
    await eventually(() => expect(stream.text()).toContain(': ready'));
    await eventually(async () => expect(await followers(h.url)).toBeGreaterThanOrEqual(1));
    await h.revoke(key_id);
    await eventually(() => expect(stream.ended()).toBe(true), { timeoutMs: 2_000 });
    await eventually(async () => expect(await followers(h.url)).toBe(0));
  });

  it('follows messages appended by another replica, and ends its streams when it stops', async () => {
    const id = await conversation();
    const second: TestService = await startTestService(injectorDefinition({ sseKeepAliveMs: KEEP_ALIVE_MS }), h.nats);
    try {
      const stream = await rawStream(eventsUrl(id, second.service.url), key);
      await eventually(() => expect(stream.text()).toContain(': ready'));
      await add(id, 'via the first replica');
      await eventually(() => expect(stream.text()).toContain('via the first replica'));
      await second.service.stop();
      await eventually(() => expect(stream.ended()).toBe(true));
    } finally {
      await second.service.stop();
    }
  });
});

async function followers(url: string): Promise<number> {
  const metrics = await http('GET', `${url}/metrics`);
  return Number(/backchannel_sse_followers\{[^}]*\} (\d+)/.exec(metrics.body as string)?.[1]);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
