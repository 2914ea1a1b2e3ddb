import { afterEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { InjectedMessage } from '@backchannel/contracts';
import { eventually } from '@backchannel/testing';
import type { TranscriptReader } from '../transcript/transcript-reader.service.js';
import { Follower, type EventSink } from './follower.js';

function message(position: number): InjectedMessage {
  return {
    position,
    conversation_id: 'c1',
    role: 'user',
    source: { type: 'api' },
    content: `m${position}`,
    delivery: 'when_idle',
    trace_id: 'a'.repeat(32),
    injected_at: 'now',
  };
}

/** A transcript in memory, read like TranscriptReader does. */
class FakeTranscript {
  readonly messages: InjectedMessage[] = [];
  append(count: number): InjectedMessage[] {
    const base = this.messages.length;
    const added = Array.from({ length: count }, (_, i) => message(base + i + 1));
    this.messages.push(...added);
    return added;
  }
  lastPosition(): Promise<number> {
    return Promise.resolve(this.messages.length);
  }
  page(_id: string, after: number, limit: number) {
    const messages = this.messages.filter((m) => m.position > after).slice(0, limit);
    return Promise.resolve({ messages, next_after: messages.at(-1)?.position ?? null });
  }
}

class FakeFeed {
  listener?: (message: InjectedMessage) => void;
  subscribe(_id: string, onMessage: (message: InjectedMessage) => void) {
    this.listener = onMessage;
    return Promise.resolve({ unsubscribe: () => (this.listener = undefined) });
  }
}

class ArraySink implements EventSink {
  readonly chunks: string[] = [];
  ended = false;
  write(chunk: string): Promise<boolean> {
    this.chunks.push(chunk);
    return Promise.resolve(!this.ended);
  }
  end(): void {
    this.ended = true;
  }
  onClose(): void {}
  positions(): number[] {
    return this.chunks.filter((c) => c.startsWith('id: ')).map((c) => Number(/^id: (\d+)/.exec(c)![1]));
  }
}

const followers: Follower[] = [];

async function started(after: number | undefined, transcript: FakeTranscript, feed: FakeFeed) {
  const sink = new ArraySink();
  const sut = new Follower(
    'c1',
    { tenantId: 't', keyId: 'k' },
    '4bf92f3577b34da6a3ce929d0e0e4736',
    transcript as unknown as TranscriptReader,
    pino({ level: 'silent' }),
    60_000,
    () => undefined,
  );
  followers.push(sut);
  await sut.open(feed, after);
  sut.start(sink);
  return { sut, sink };
}

describe('Follower', () => {
  afterEach(() => {
    for (const follower of followers.splice(0)) follower.close();
  });

  it('says ready first, replays after the resume point, then goes live without repeats', async () => {
    const transcript = new FakeTranscript();
    const feed = new FakeFeed();
    transcript.append(5);
    const { sut, sink } = await started(2, transcript, feed);
    expect(sink.chunks[0]).toBe(': ready\n\n');
    // Live copies of replayed messages arrive too, and a new one: each is sent once.
    for (const m of transcript.messages) feed.listener!(m);
    feed.listener!(transcript.append(1)[0]);
    await eventually(() => expect(sink.positions()).toEqual([3, 4, 5, 6]));
    expect(sink.chunks[1]).toBe(`id: 3\ndata: ${JSON.stringify(message(3))}\n\n`);
    sut.close();
    expect(sink.ended).toBe(true);
  });

  it('starts live after the last position when no resume point is given', async () => {
    const transcript = new FakeTranscript();
    const feed = new FakeFeed();
    transcript.append(3);
    const { sink } = await started(undefined, transcript, feed);
    feed.listener!(transcript.append(1)[0]);
    await eventually(() => expect(sink.positions()).toEqual([4]));
  });

  it('reads a position the live subject skipped from the transcript', async () => {
    const transcript = new FakeTranscript();
    const feed = new FakeFeed();
    const { sink } = await started(undefined, transcript, feed);
    const [, , third] = transcript.append(3);
    feed.listener!(third); // 1 and 2 were never published live
    await eventually(() => expect(sink.positions()).toEqual([1, 2, 3]));
  });

  it('drops an overflowing live queue and catches up from the transcript instead', async () => {
    const transcript = new FakeTranscript();
    const feed = new FakeFeed();
    const { sink } = await started(undefined, transcript, feed);
    for (const m of transcript.append(2_500)) feed.listener!(m);
    await eventually(() => expect(sink.positions()).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1)));
  });
});
