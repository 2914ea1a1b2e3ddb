import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AckPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { eventually, startNatsServer, type NatsServerHandle } from '@backchannel/testing';
import { connectNats, type NatsHandles } from './connection.js';
import { ConsumerLagMonitor, type ConsumerLagSample } from './consumer-lag.js';

/** The backlog gauges' source, against a private broker: pending and ack pending as JetStream counts them. */
describe('ConsumerLagMonitor', () => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  let js: JetStreamClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'lag-test');
    js = handles.js;
    await handles.jsm.streams.add({ name: 'LAG', subjects: ['lag.>'] });
    for (const name of ['role-p0', 'role-p1', 'other']) {
      await handles.jsm.consumers.add('LAG', {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        filter_subject: name === 'role-p1' ? 'lag.1' : 'lag.0',
      });
    }
  });

  afterAll(async () => {
    await handles?.nc.close();
    await nats?.cleanup();
  });

  it('reports pending and ack-pending messages of the wanted consumers only', async () => {
    for (let i = 0; i < 5; i++) await js.publish('lag.0', 'x');
    await js.publish('lag.1', 'y');
    const consumer = await js.consumers.get('LAG', 'role-p0');
    const batch = await consumer.fetch({ max_messages: 2, expires: 1_000 });
    for await (const _message of batch) {
      // Delivered, not acknowledged: ack pending.
    }
    const monitor = new ConsumerLagMonitor(handles.jsm, {
      stream: 'LAG',
      consumers: ['role-p0', 'role-p1', 'role-p2'],
      onSample: () => undefined,
    });
    const samples = await monitor.poll();
    expect(samples.sort((a, b) => a.consumer.localeCompare(b.consumer))).toEqual([
      { consumer: 'role-p0', pending: 3, ackPending: 2 },
      { consumer: 'role-p1', pending: 1, ackPending: 0 },
    ]);
  });

  it('polls at once and then every interval, reports failures, and stops', async () => {
    const seen: ConsumerLagSample[][] = [];
    const errors: unknown[] = [];
    const monitor = new ConsumerLagMonitor(handles.jsm, {
      stream: 'NO_SUCH_STREAM',
      consumers: ['role-p0'],
      onSample: (samples) => seen.push(samples),
      onError: (error) => errors.push(error),
      everyMs: 20,
    });
    monitor.start();
    await eventually(() => expect(errors.length).toBeGreaterThanOrEqual(2));
    await monitor.stop();
    expect(seen).toEqual([]);

    const good = new ConsumerLagMonitor(handles.jsm, {
      stream: 'LAG',
      consumers: ['role-p1'],
      onSample: (samples) => seen.push(samples),
      everyMs: 60_000,
    });
    good.start();
    await eventually(() => expect(seen).toHaveLength(1));
    await good.stop();
    expect(seen[0]).toEqual([{ consumer: 'role-p1', pending: 1, ackPending: 0 }]);
  });
});
