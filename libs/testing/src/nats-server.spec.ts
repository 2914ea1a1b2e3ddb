import { afterEach, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

import { startNatsServer, type NatsServerHandle } from './nats-server.js';

describe('startNatsServer', () => {
  let server: NatsServerHandle | undefined;

  afterEach(async () => {
    await server?.cleanup();
    server = undefined;
  });

  it('keeps a JetStream stream across a kill and a restart on the same port', async () => {
    server = await startNatsServer();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.port).not.toBe(4222);

    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'PROBE', subjects: ['probe.>'], storage: StorageType.File });
    const ack = await jetstream(nc).publish('probe.one', 'survives a crash');
    expect(ack.seq).toBe(1);
    await nc.close();

    // SIGKILL: nothing is flushed on the way down, so this proves the acked write is on disk.
    const firstPid = server.pid;
    await server.kill();
    await server.restart();
    expect(server.pid).not.toBe(firstPid);

    const again = await connect({ servers: server.url });
    try {
      const jsm2 = await jetstreamManager(again);
      const stored = await jsm2.streams.getMessage('PROBE', { seq: 1 });
      expect(stored?.subject).toBe('probe.one');
      expect(stored?.string()).toBe('survives a crash');
    } finally {
      await again.close();
    }
  });

  it('pauses and resumes, and stop() ends a paused server', async () => {
    server = await startNatsServer();
    server.pause();
    server.resume();
    const nc = await connect({ servers: server.url });
    await nc.flush();
    await nc.close();
    server.pause();
    await server.stop();
  });
});
