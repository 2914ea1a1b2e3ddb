// The two ceilings the ingress is measured against, on the same machine in the same run:
//   fastify  — a bare Fastify handler answering 202;
//   publish  — a bare Fastify handler doing one awaited JetStream publish, then 202;
//   publish-coalesced — the same over the services' own connection (`connectNats`, with its
//              write coalescing and shared cancel error), for comparison only.
// Usage: node bench/ceiling-server.mjs <fastify|publish|publish-coalesced> <port> [natsUrl]
import Fastify from 'fastify';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';

const [mode, port, natsUrl] = process.argv.slice(2);
const app = Fastify({ logger: false });
let publish = async () => undefined;
if (mode.startsWith('publish')) {
  // `publish` is the stock client with the services' options (no async stack traces);
  // `publish-coalesced` is the services' own connection, `connectNats` (libs/messaging).
  const { js, jsm } =
    mode === 'publish-coalesced'
      ? await (await import('../dist/libs/messaging/src/index.js')).connectNats(natsUrl, 'bench-ceiling')
      : await stockClient();
  await jsm.streams.add({ name: 'BENCH_CEILING', subjects: ['bench.ceiling.>'] }).catch(() => undefined);
  let n = 0;
  publish = (body) => js.publish(`bench.ceiling.${n++ % 64}`, JSON.stringify(body));
}
app.post('/api/v1/webhooks/:id', async (request, reply) => {
  await publish(request.body);
  return reply.status(202).send({ status: 'accepted', work_item_id: request.params.id, duplicate: false });
});
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.send?.('ready');
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));

async function stockClient() {
  const nc = await connect({ servers: natsUrl, noAsyncTraces: true });
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
}
