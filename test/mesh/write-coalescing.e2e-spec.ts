import { Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import { connectNats, coalesceWrites, ensureStream, type NatsHandles } from '@backchannel/messaging';
import { startNatsServer, type NatsServerHandle } from '@backchannel/testing';

/**
 * The services' broker connection writes once per event-loop turn (write-coalescing.ts):
 * fewer, larger socket writes, with every publish still arriving, in order, and nothing
 * published before close() dropped.
 */
describe('coalesced broker writes', () => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  // Counts socket writes to the broker's port (the test's only writer to it).
  const writes = jest.spyOn(Socket.prototype, 'write');
  const writesToBroker = (): number =>
    writes.mock.contexts.filter((socket) => (socket as Socket).remotePort === nats.port).length;

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'write-coalescing-test');
    await ensureStream(
      handles.jsm,
      {
        name: 'COALESCE',
        subjects: ['coalesce.>'],
        maxAgeMs: 60_000,
        duplicateWindowMs: 1_000,
        maxMsgSize: 1024,
        allowDirect: true,
      },
      1,
    );
  });

  beforeEach(() => {
    writes.mockClear();
  });

  afterAll(async () => {
    writes.mockRestore();
    await handles?.nc.close();
    await nats?.cleanup();
  });

  it('sends the publishes of one turn in one write, and each is stored in the order issued', async () => {
    const acks = [];
    // Each publish in a microtask of its own, as when they follow separate acks or requests:
    // the stock client writes after every one of them.
    for (let i = 0; i < 50; i++) {
      acks.push(handles.js.publish(`coalesce.${i % 5}`, String(i)));
      await Promise.resolve();
    }
    const stored = await Promise.all(acks);
    expect(writesToBroker()).toBeLessThanOrEqual(2);
    const seqs = stored.map((ack) => ack.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(50);
    for (const [i, ack] of stored.entries()) {
      const message = await handles.jsm.streams.getMessage('COALESCE', { seq: ack.seq });
      expect(message?.string()).toBe(String(i));
    }
  });

  it('the stock client writes once per publish in the same pattern (what is saved)', async () => {
    const stock = await connect({ servers: nats.url });
    try {
      await stock.flush();
      writes.mockClear();
      for (let i = 0; i < 50; i++) {
        stock.publish('coalesce.stock', String(i));
        await Promise.resolve();
      }
      await stock.flush();
      expect(writesToBroker()).toBeGreaterThanOrEqual(50);
    } finally {
      await stock.close();
    }
  });

  it('flush() still round-trips', async () => {
    await expect(handles.nc.flush()).resolves.toBeUndefined();
  });

  it('what is published right before close() reaches the broker', async () => {
    const subscriber = await connect({ servers: nats.url });
    const received: string[] = [];
    const done = new Promise<void>((resolve) =>
      subscriber.subscribe('coalesce.last', {
        callback: (_error, message) => {
          received.push(message.string());
          if (received.length === 3) resolve();
        },
      }),
    );
    await subscriber.flush();
    const publisher = await connect({ servers: nats.url });
    expect(coalesceWrites(publisher)).toBe(true);
    for (const word of ['one', 'two', 'three']) publisher.publish('coalesce.last', word);
    await publisher.close();
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    expect(received).toEqual(['one', 'two', 'three']);
    await subscriber.close();
  });
});
