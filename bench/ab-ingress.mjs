// `node bench/ab-ingress.mjs <other checkout>`: this checkout's ingress (B) against another
// build of it (A, e.g. `git worktree add /tmp/a main && cd /tmp/a && ln -s
// "$OLDPWD/node_modules" && npm run build`), both on one broker and mesh, in closed loops
// alternated A B B A …, with the sequencer and the injector paused. Prints each loop's rate and the ingress's CPU per callback, then the
// medians. On a noisy machine two runs minutes apart differ by more than most changes;
// alternating short loops on one mesh is what tells a few per cent (docs/benchmarks.md).
import { fork } from 'node:child_process';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import {
  CLOCK_TICKS,
  ROOT,
  ensureBuilt,
  freePort,
  pool,
  procStats,
  request,
  round,
  startNats,
  startServices,
  stopNats,
  stopServices,
  track,
} from './harness.mjs';

const OTHER = process.argv[2];
const ROUNDS = Number(process.env.AB_ROUNDS ?? 6);
const LOOP_MS = Number(process.env.AB_LOOP_MS ?? 1_500);
const ITEMS = Number(process.env.AB_ITEMS ?? 100_000);
const log = (message) => process.stdout.write(`[ab] ${message}\n`);

async function main() {
  if (!OTHER) throw new Error('usage: node bench/ab-ingress.mjs <path of another built checkout>');
  ensureBuilt(log);
  const CONTRACT = await import('../dist/libs/contracts/src/index.js');
  const nats = await startNats('bc-ab');
  const env = {
    NATS_URL: nats.url,
    INTERNAL_API_TOKEN: 'bench-internal-token-0123456789',
    LOG_LEVEL: 'warn',
    INGRESS_RATE_LIMIT_PER_SOURCE: '1000000',
  };
  const spec = async (name, portVariable, root) => {
    const port = await freePort();
    return { name, port, root, env: { ...env, [portVariable]: String(port) } };
  };
  const services = await startServices([
    await spec('token-authority', 'TOKEN_AUTHORITY_PORT'),
    await spec('ordering-sequencer', 'SEQUENCER_PORT'),
    await spec('conversation-injector', 'INJECTOR_PORT'),
    await spec('callback-ingress', 'INGRESS_PORT', path.resolve(OTHER)),
    await spec('callback-ingress', 'INGRESS_PORT'),
  ]);
  const [, sequencer, injector, a, b] = services;
  const ingresses = { A: a, B: b };
  for (const paused of [sequencer, injector]) paused.child.kill('SIGSTOP');

  const nc = await connect({ servers: nats.url });
  const conversations = Array.from({ length: 100 }, (_, i) => `ab-${i}`);
  await pool(conversations, 64, (conversation_id) =>
    request(nc, CONTRACT.API_SUBJECTS.conversationsOpen, { conversation_id, tenant_id: 'bench' }),
  );
  log(`registering ${ITEMS} work items`);
  const items = await pool(
    Array.from({ length: ITEMS }, (_, i) => i),
    64,
    (i) =>
      request(nc, CONTRACT.API_SUBJECTS.workItemsRegister, {
        conversation_id: conversations[i % conversations.length],
        kind: 'tool',
        timeout_ms: 3_600_000,
      }),
  );
  const requests = items.map((item) => ({
    id: item.work_item_id,
    path: `/api/v1/webhooks/${item.work_item_id}`,
    token: item.callback.headers['x-callback-token'],
    body: JSON.stringify({ result: { order: 'A-1', status: 'shipped' } }),
  }));

  // Callbacks are taken in registration order by both: results are released in that order.
  let sent = 0;
  const rows = { A: [], B: [] };
  for (let round_ = 0; round_ < ROUNDS; round_++) {
    for (const name of round_ % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
      const ingress = ingresses[name];
      let cpuBefore;
      // Counted from the end of the load generator's warm-up (its health probes are not callbacks).
      const run = await closedLoop(ingress.origin, requests.slice(sent), () => (cpuBefore = cpuMs(ingress.child.pid)));
      sent += run.results.length;
      const row = {
        per_s: round(run.accepted / run.seconds),
        cpu_us: round(((cpuMs(ingress.child.pid) - cpuBefore) * 1000) / run.accepted),
        errors: run.results.length - run.accepted,
      };
      rows[name].push(row);
      log(`${name} ${JSON.stringify(row)}`);
      if (sent >= requests.length) throw new Error('out of work items: raise AB_ITEMS');
    }
  }
  // The first loop of each warms its process up: left out of the medians.
  for (const name of ['A', 'B']) {
    const warm = rows[name].slice(1);
    log(
      `${name}: median ${median(warm.map((r) => r.per_s))}/s, ${median(warm.map((r) => r.cpu_us))} µs CPU per callback`,
    );
  }
  for (const paused of [sequencer, injector]) paused.child.kill('SIGCONT');
  await nc.close();
  await stopServices(services);
  await stopNats(nats);
}

function cpuMs(pid) {
  return (procStats(pid).ticks * 1000) / CLOCK_TICKS;
}

async function closedLoop(origin, requests, onWarmedUp) {
  const worker = track(fork(path.join(ROOT, 'bench/load-worker.mjs'), [], { stdio: 'ignore' }));
  worker.send({ kind: 'closed', origin, requests, durationMs: LOOP_MS, concurrency: 64 });
  const { results } = await new Promise((resolve) =>
    worker.on('message', (message) => (message.warmedUp ? onWarmedUp() : resolve(message))),
  );
  worker.kill();
  let firstSent = Infinity;
  let lastAnswered = -Infinity;
  for (const result of results) {
    firstSent = Math.min(firstSent, result.sentAt);
    lastAnswered = Math.max(lastAnswered, result.answeredAt);
  }
  const accepted = results.filter((r) => r.status === 202 || r.status === 200).length;
  return { results, accepted, seconds: (lastAnswered - firstSent) / 1000 };
}

function median(values) {
  const sorted = [...values].sort((x, y) => x - y);
  return (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
}

main().catch((error) => {
  process.stderr.write(`ab-ingress failed: ${error.stack ?? error}\n`);
  process.exit(1);
});
