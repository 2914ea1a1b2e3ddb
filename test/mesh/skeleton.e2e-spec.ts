import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { liveMessagesSubject, type InjectedMessage } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../../apps/tool-dispatcher/src/tool-dispatcher.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';

/**
 * The walking skeleton through every service and the real broker: open, register,
 * callback, order, inject, publish live. One callback, exactly one live message.
 */
describe('the whole mesh, end to end', () => {
  let nats: NatsServerHandle;
  const services: TestService[] = [];
  let live: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    for (const definition of [
      TOKEN_AUTHORITY,
      CALLBACK_INGRESS,
      ORDERING_SEQUENCER,
      CONVERSATION_INJECTOR,
      TOOL_DISPATCHER,
    ]) {
      services.push(await startTestService(definition, nats));
    }
    live = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await live?.close();
    for (const service of services.reverse()) await service.service.stop();
    await nats?.cleanup();
  });

  it('one callback posted gives exactly one message on the live subject, at position 1', async () => {
    const [ta, ingress] = services as [TestService, TestService];
    const received: InjectedMessage[] = [];
    live.subscribe(liveMessagesSubject('skeleton-1'), {
      callback: (_error, msg) => {
        received.push(msg.json<InjectedMessage>());
      },
    });
    await live.flush();
    const platform = new PlatformClient(ta.service.url);
    await platform.openConversation('skeleton-1');
    const item = await platform.register('skeleton-1');
    const answer = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      result: { order: 'A-17', status: 'shipped' },
    });
    expect(answer.status).toBe(202);

    await eventually(() => expect(received).toHaveLength(1));
    expect(received[0]).toMatchObject({
      position: 1,
      conversation_id: 'skeleton-1',
      role: 'tool',
      source: { type: 'callback', work_item_id: item.work_item_id, sequence: 1 },
      result: { order: 'A-17', status: 'shipped' },
      delivery: 'when_idle',
    });
    expect(received[0].trace_id).toMatch(/^[0-9a-f]{32}$/);
    // A replay of the same callback injects nothing more: a later item, used as a barrier,
    // lands at position 2, which the replay would have taken.
    const replay = await postCallback(ingress.service.url, item.work_item_id, item.token, {
      result: { status: 'shipped', order: 'A-17' },
    });
    expect(replay.status).toBe(200);
    const barrier = await platform.register('skeleton-1');
    await postCallback(ingress.service.url, barrier.work_item_id, barrier.token, { result: 'barrier' });
    await eventually(() => expect(received).toHaveLength(2));
    expect(received[1]).toMatchObject({ position: 2, source: { work_item_id: barrier.work_item_id } });
  });
});
