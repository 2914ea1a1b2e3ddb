// `npm run bench`: the mesh against its raw ceilings, measured in one run on this machine.
// Prints a table and writes bench/results/latest.json. See docs/benchmarks.md.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  CLOCK_TICKS,
  ROOT,
  ensureBuilt,
  freePort,
  now,
  poll,
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

const QUICK = process.env.BENCH_QUICK === '1';
const STEP_MS = QUICK ? 2_000 : 5_000;
const RATES = QUICK ? [500, 1_000] : [500, 1_000, 2_000, 3_000, 4_000];
const CLOSED_MS = QUICK ? 2_000 : 5_000;
/** The ingress against the publish ceiling: this many alternating pairs of closed loops. */
const PAIRS = 4;
const PAIR_MS = QUICK ? 1_000 : 3_000;
const SCALES = QUICK ? [100, 1_000] : [100, 10_000, 100_000];
const SCALE_CALLBACKS = QUICK ? 5_000 : 12_000;
const INTERNAL_TOKEN = 'bench-internal-token-0123456789';
/** `SEQUENCER_PARTITIONS` of the mesh the bench starts (the default). */
const PARTITIONS = 16;

let CONTRACT;

async function main() {
  ensureBuilt(log);
  // The wire names come from the contract lib itself (built), never spelled here.
  CONTRACT = await import('../dist/libs/contracts/src/index.js');
  const nats = await startNats('bc-bench');
  const report = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  };

  // The stock client's publish ceiling, the target's, is measured below, paired with the ingress.
  log("ceilings: bare Fastify 202, and Fastify + one awaited publish with the services' broker client");
  report.ceiling_fastify_per_s = await ceiling('fastify', nats.url);
  // Not a target: the publish ceiling with the services' broker client changes, to show how
  // much of the ingress's standing against the ceiling that alone explains.
  report.ceiling_fastify_publish_coalesced_per_s = await ceiling('publish-coalesced', nats.url);

  log('mesh: token-authority, callback-ingress, ordering-sequencer, conversation-injector');
  const mesh = await startMesh(nats.url);
  const nc = await connect({ servers: nats.url });
  const arrivals = await followLive(nats.url);
  // Whose CPU each open-loop step used (the broker's and each service's), per callback.
  const processes = { broker: nats.child.pid, ...Object.fromEntries(mesh.services.map((s) => [s.name, s.child.pid])) };

  // The ingress's own cost against the publish ceiling (the ratio). Both are closed
  // loops with the sequencer and the injector paused (SIGSTOP), so the HTTP process and the
  // broker have the machine; they are resumed after, and every accepted callback must still
  // be injected. Measured as alternating pairs (ceiling then ingress, ingress then ceiling,
  // …) and reported as medians: this machine's neighbours swing a 5-second figure by half
  // from one minute to the next, and a ratio of two figures taken minutes apart swung with them.
  log(`ingress alone against the publish ceiling (${PAIRS} alternating pairs of ${PAIR_MS / 1000} s closed loops)`);
  const aloneRequests = await registerMany(nc, QUICK ? 20_000 : 72_000, 100, 'alone');
  await waitIdle(nc);
  const publishCeiling = await startCeiling('publish', nats.url);
  // Each ingress loop starts where the last stopped: results are released in registration
  // order, so a request skipped would hold every later one of its conversation (CONTRACT.md §4).
  let sent = 0;
  const pairs = [];
  const aloneRuns = [];
  mesh.signal(['ordering-sequencer', 'conversation-injector'], 'SIGSTOP');
  for (let pair = 0; pair < PAIRS; pair++) {
    const runCeiling = () =>
      drive(publishCeiling, 'closed', ceilingRequests(), { concurrency: 64, durationMs: PAIR_MS });
    const runIngress = () =>
      drive(mesh.ingress, 'closed', aloneRequests.slice(sent), { concurrency: 64, durationMs: PAIR_MS });
    const ceilingFirst = pair % 2 === 0;
    const first = await (ceilingFirst ? runCeiling() : runIngress());
    const second = await (ceilingFirst ? runIngress() : runCeiling());
    const [ceilingRun, ingressRun] = ceilingFirst ? [first, second] : [second, first];
    aloneRuns.push(ingressRun);
    sent += ingressRun.results.length;
    const ceiling_per_s = round(ceilingRun.accepted / ceilingRun.seconds);
    const ingress_per_s = round(ingressRun.accepted / ingressRun.seconds);
    pairs.push({ ceiling_per_s, ingress_per_s, ratio: round(ingress_per_s / ceiling_per_s, 3) });
  }
  mesh.signal(['ordering-sequencer', 'conversation-injector'], 'SIGCONT');
  await publishCeiling.stop();
  report.ingress_ceiling_pairs = pairs;
  report.ceiling_fastify_publish_per_s = median(pairs.map((p) => p.ceiling_per_s));
  report.ingress_accepted_per_s = median(pairs.map((p) => p.ingress_per_s));
  report.ingress_ratio_to_ceiling = median(pairs.map((p) => p.ratio));
  const aloneResults = { results: aloneRuns.flatMap((run) => run.results) };
  report.ingress_alone_lost = (await endToEnd(aloneResults, arrivals, 120_000)).lost;
  await waitIdle(nc);

  log(`ingress with the whole mesh running (closed loop, 64 in flight, ${CLOSED_MS / 1000} s)`);
  const withMesh = await drive(mesh.ingress, 'closed', await registerMany(nc, QUICK ? 12_000 : 30_000, 100, 'max'), {
    concurrency: 64,
    beforeStart: () => waitIdle(nc),
  });
  report.ingress_with_mesh_per_s = round(withMesh.accepted / withMesh.seconds);
  report.ingress_with_mesh_lost = (await endToEnd(withMesh, arrivals, 120_000)).lost;

  report.steps = [];
  for (const rate of RATES) {
    log(`open loop at ${rate}/s for ${STEP_MS / 1000} s`);
    const requests = await registerMany(nc, Math.round((rate * STEP_MS) / 1000), 100, `r${rate}`);
    await waitIdle(nc);
    let cpuBefore;
    const run = await drive(mesh.ingress, 'open', requests, {
      rate,
      onWarmedUp: () => (cpuBefore = cpuMsOf(processes)),
    });
    const e2e = await endToEnd(run, arrivals);
    const cpu = cpuPerCallback(cpuBefore, cpuMsOf(processes), run);
    report.steps.push({
      rate,
      accepted_per_s: round(run.accepted / run.seconds),
      errors: run.errors,
      ...e2e,
      cpu_us_per_callback: cpu,
    });
  }
  const at1000 = report.steps.find((step) => step.rate === 1_000);
  report.e2e_p50_ms_at_1000 = at1000?.p50_ms;
  report.e2e_p99_ms_at_1000 = at1000?.p99_ms;
  report.e2e_p999_ms_at_1000 = at1000?.p999_ms;
  const sustained = report.steps.filter(
    (s) => s.lost === 0 && s.errors === 0 && s.p99_ms < 50 && s.accepted_per_s >= s.rate * 0.95,
  );
  report.max_sustained_per_s = Math.max(0, ...sustained.map((s) => s.rate));
  report.lost =
    report.steps.reduce((sum, s) => sum + s.lost, 0) + report.ingress_alone_lost + report.ingress_with_mesh_lost;

  report.scale = [];
  for (const conversations of SCALES) {
    log(`scale: ${conversations} active conversations`);
    // Every conversation is opened (active); callbacks spread over up to 10,000 of them.
    const requests = await registerMany(nc, SCALE_CALLBACKS, conversations, `s${conversations}`);
    await waitIdle(nc);
    let cpuBefore;
    const run = await drive(mesh.ingress, 'closed', requests, {
      concurrency: 64,
      onWarmedUp: () => (cpuBefore = cpuMsOf(processes)),
    });
    // CPU until every accepted callback is applied: the backlog a closed loop leaves is part of its cost.
    await waitIdle(nc);
    const cpu = cpuPerCallback(cpuBefore, cpuMsOf(processes), run);
    report.scale.push({ conversations, accepted_per_s: round(run.accepted / run.seconds), cpu_us_per_callback: cpu });
  }
  const first = report.scale[0];
  const last = report.scale.at(-1);
  report.throughput_ratio_100k_vs_100 = round(last.accepted_per_s / first.accepted_per_s, 3);
  // The same question asked of CPU, which the machine's neighbours disturb far less than throughput.
  report.cpu_ratio_100k_vs_100 = round(last.cpu_us_per_callback.total / first.cpu_us_per_callback.total, 3);
  report.rss_mb = Object.fromEntries(mesh.services.map((s) => [s.name, rssMb(s.child.pid)]));

  await nc.close();
  arrivals.stop();
  await stopServices(mesh.services);
  await stopNats(nats);
  printTable(report);
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/latest.json'), JSON.stringify(report, null, 2) + '\n');
  log('wrote bench/results/latest.json');
}

// ---------------------------------------------------------------------------------------

/** One ceiling server, started, driven for one closed loop and stopped (the informative ceilings). */
async function ceiling(mode, natsUrl) {
  const server = await startCeiling(mode, natsUrl);
  const run = await drive(server, 'closed', ceilingRequests(), { concurrency: 64 });
  await server.stop();
  return round(run.accepted / run.seconds);
}

/** A ceiling server (bench/ceiling-server.mjs) in its own process; `stop()` ends it. */
async function startCeiling(mode, natsUrl) {
  const port = await freePort();
  const child = track(
    fork(path.join(ROOT, 'bench/ceiling-server.mjs'), [mode, String(port), natsUrl], { stdio: 'ignore' }),
  );
  await new Promise((resolve) => child.once('message', resolve));
  return {
    origin: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** More requests than any closed loop gets through; a ceiling server takes any id and body. */
function ceilingRequests() {
  return Array.from({ length: 200_000 }, (_, i) => ({
    id: String(i),
    path: `/api/v1/webhooks/wi_${i}`,
    body: '{"result":{"ok":true}}',
  }));
}

async function startMesh(natsUrl) {
  const names = ['token-authority', 'callback-ingress', 'ordering-sequencer', 'conversation-injector'];
  const specs = [];
  for (const name of names) {
    const port = await freePort();
    // BENCH_PROFILE=<service>[,<service>]: that service writes a V8 CPU profile (.cpuprofile,
    // open in Chrome DevTools) to bench/results/profiles when the bench stops it.
    const profiled = (process.env.BENCH_PROFILE ?? '').split(',').includes(name);
    specs.push({
      name,
      port,
      env: {
        NATS_URL: natsUrl,
        INTERNAL_API_TOKEN: INTERNAL_TOKEN,
        LOG_LEVEL: 'warn',
        INGRESS_RATE_LIMIT_PER_SOURCE: '1000000',
        [portEnv(name)]: String(port),
      },
      nodeArgs: profiled ? ['--cpu-prof', '--cpu-prof-dir', path.join(ROOT, 'bench', 'results', 'profiles')] : [],
    });
  }
  const services = await startServices(specs);
  const signal = (names, sig) => services.filter((s) => names.includes(s.name)).forEach((s) => s.child.kill(sig));
  return { services, ingress: services.find((s) => s.name === 'callback-ingress'), signal };
}

/**
 * Waits until the sequencer and the injector have applied everything in their streams (each
 * partition's checkpoint at its last message), so a step measures its own traffic only. A
 * probe is 64 broker reads: every 200 ms (checkpoints move every 250 ms), so that waiting
 * adds little to the broker's CPU a scale step counts.
 */
async function waitIdle(nc, timeoutMs = 180_000) {
  const jsm = await jetstreamManager(nc);
  const leases = await new Kvm(nc).open(CONTRACT.LEASES_BUCKET.bucket);
  const roles = [
    ['sequencer', CONTRACT.WORK_STREAM.name, CONTRACT.workPartitionFilter],
    ['injector', CONTRACT.RELEASE_STREAM.name, CONTRACT.releasePartitionFilter],
  ];
  await poll(
    async () => {
      for (const [role, stream, filterFor] of roles) {
        for (let partition = 0; partition < PARTITIONS; partition++) {
          const last = await jsm.direct.getMessage(stream, { last_by_subj: filterFor(partition) }).catch(() => null);
          const entry = await leases.get(CONTRACT.KV_KEYS.checkpoint(role, partition));
          const checkpoint = entry && entry.length > 0 ? entry.json().seq : 0;
          if ((last?.seq ?? 0) > checkpoint) return false;
        }
      }
      return true;
    },
    timeoutMs,
    200,
  );
}

function portEnv(name) {
  return {
    'token-authority': 'TOKEN_AUTHORITY_PORT',
    'callback-ingress': 'INGRESS_PORT',
    'ordering-sequencer': 'SEQUENCER_PORT',
    'conversation-injector': 'INJECTOR_PORT',
  }[name];
}

/** Opens `conversations` conversations and registers `count` work items spread over them. */
async function registerMany(nc, count, conversations, label) {
  const ids = Array.from({ length: conversations }, (_, i) => `bench-${label}-${i}`);
  const started = now();
  await pool(ids, 64, (conversation_id) =>
    request(nc, CONTRACT.API_SUBJECTS.conversationsOpen, { conversation_id, tenant_id: 'bench' }),
  );
  const used = Math.min(conversations, count);
  const items = await pool(
    Array.from({ length: count }, (_, i) => i),
    64,
    (i) =>
      request(nc, CONTRACT.API_SUBJECTS.workItemsRegister, {
        conversation_id: ids[i % used],
        kind: 'tool',
        timeout_ms: 3_600_000,
      }),
  );
  log(`  set up ${conversations} conversations and ${count} work items in ${((now() - started) / 1000).toFixed(1)} s`);
  return items.map((item) => ({
    id: item.work_item_id,
    path: `/api/v1/webhooks/${item.work_item_id}`,
    token: item.callback.headers['x-callback-token'],
    body: JSON.stringify({ result: { order: 'A-1', status: 'shipped' } }),
  }));
}

async function drive(target, kind, requests, options) {
  const worker = track(fork(path.join(ROOT, 'bench/load-worker.mjs'), [], { stdio: 'ignore' }));
  await options.beforeStart?.();
  const { beforeStart: _beforeStart, onWarmedUp, durationMs = CLOSED_MS, ...plan } = options;
  worker.send({ kind, origin: target.origin, requests, durationMs, ...plan });
  // The worker says when its warm-up is over (the step starts), then sends the results.
  const { results, cpuMs } = await new Promise((resolve) =>
    worker.on('message', (message) => (message.warmedUp ? onWarmedUp?.() : resolve(message))),
  );
  worker.kill();
  // From the first request sent to the last answer: a closed loop that runs out of requests
  // before `durationMs` is measured over the time it ran, not the time it was given.
  let firstSent = Infinity;
  let lastAnswered = -Infinity;
  for (const result of results) {
    firstSent = Math.min(firstSent, result.sentAt);
    lastAnswered = Math.max(lastAnswered, result.answeredAt);
  }
  const seconds = (lastAnswered - firstSent) / 1000;
  const accepted = results.filter((r) => r.status === 202 || r.status === 200).length;
  return { results, accepted, errors: results.length - accepted, seconds, loadGeneratorCpuMs: cpuMs };
}

/** CPU time (user + system) each process has used so far, ms. */
function cpuMsOf(processes) {
  return Object.fromEntries(
    Object.entries(processes).map(([name, pid]) => [name, (procStats(pid).ticks * 1000) / CLOCK_TICKS]),
  );
}

/**
 * CPU µs per accepted callback, by process, over a step (the broker's and the services'
 * include the few seconds after it in which the last callbacks were injected).
 */
function cpuPerCallback(before, after, run) {
  const per = (ms) => round((ms * 1000) / Math.max(1, run.accepted));
  const used = Object.fromEntries(Object.keys(after).map((name) => [name, per(after[name] - before[name])]));
  used['load-generator'] = per(run.loadGeneratorCpuMs);
  used.total = round(Object.values(used).reduce((sum, value) => sum + value, 0));
  return used;
}

/**
 * When each injected message arrived on the live subjects, by work item, as stamped by
 * `bench/live-follower.mjs` (a process of its own, so this one's garbage collections do
 * not delay the stamps). `take()` brings what arrived since the last call over.
 */
async function followLive(natsUrl) {
  const child = track(
    fork(path.join(ROOT, 'bench/live-follower.mjs'), [natsUrl, CONTRACT.LIVE_MESSAGES_WILDCARD], { stdio: 'ignore' }),
  );
  await new Promise((resolve) => child.once('message', resolve));
  const arrivals = new Map();
  return {
    has: (workItemId) => arrivals.has(workItemId),
    get: (workItemId) => arrivals.get(workItemId),
    take: async () => {
      const taken = new Promise((resolve) => child.once('message', resolve));
      child.send('take');
      for (const [workItemId, at] of await taken) arrivals.set(workItemId, at);
    },
    stop: () => child.kill(),
  };
}

async function endToEnd(run, arrivals, waitMs = 10_000) {
  const accepted = run.results.filter((r) => r.status === 202 || r.status === 200);
  await poll(
    async () => {
      await arrivals.take();
      return accepted.every((r) => arrivals.has(r.id));
    },
    waitMs,
    100,
  ).catch(() => arrivals.take());
  const latencies = accepted
    .filter((r) => arrivals.has(r.id))
    .map((r) => arrivals.get(r.id) - r.sentAt)
    .sort((a, b) => a - b);
  const pct = (p) => round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN, 2);
  return { p50_ms: pct(0.5), p99_ms: pct(0.99), p999_ms: pct(0.999), lost: accepted.length - latencies.length };
}

function rssMb(pid) {
  return round(procStats(pid).rssKb / 1024, 1);
}

function printTable(report) {
  const rows = [
    ['ceiling: Fastify 202', `${report.ceiling_fastify_per_s}/s`],
    ['ceiling: Fastify + awaited publish', `${report.ceiling_fastify_publish_per_s}/s (median of ${PAIRS} runs)`],
    [
      '  (same, broker client as in the services)',
      `${report.ceiling_fastify_publish_coalesced_per_s}/s (ingress at ${pctOf(report.ingress_accepted_per_s / report.ceiling_fastify_publish_coalesced_per_s)} of it)`,
    ],
    [
      'ingress alone (closed loop)',
      `${report.ingress_accepted_per_s}/s (median); ${pctOf(report.ingress_ratio_to_ceiling)} of the ceiling (median of the pairs' ratios), lost after resume ${report.ingress_alone_lost}`,
    ],
    [
      '  pairs: ingress / ceiling per s',
      report.ingress_ceiling_pairs.map((p) => `${p.ingress_per_s} / ${p.ceiling_per_s}`).join(', '),
    ],
    ['ingress, whole mesh running', `${report.ingress_with_mesh_per_s}/s, lost ${report.ingress_with_mesh_lost}`],
    ...report.steps.map((s) => [
      `open loop ${s.rate}/s`,
      `${s.accepted_per_s}/s accepted, e2e p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms, p99.9 ${s.p999_ms} ms, errors ${s.errors}, lost ${s.lost}`,
    ]),
    ...report.steps.map((s) => [
      `  CPU µs per callback at ${s.rate}/s`,
      Object.entries(s.cpu_us_per_callback)
        .map(([name, us]) => `${name} ${us}`)
        .join(', '),
    ]),
    ['max sustained (0 lost, p99 < 50 ms)', `${report.max_sustained_per_s}/s`],
    ...report.scale.map((s) => [
      `${s.conversations} active conversations`,
      `${s.accepted_per_s}/s, CPU ${s.cpu_us_per_callback.total} µs per callback`,
    ]),
    ['throughput ratio, largest vs 100 conversations', String(report.throughput_ratio_100k_vs_100)],
    ['CPU per callback ratio, largest vs 100', String(report.cpu_ratio_100k_vs_100)],
    ...Object.entries(report.rss_mb).map(([name, mb]) => [`RSS ${name}`, `${mb} MB`]),
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  process.stdout.write(`\nBackchannel bench — ${report.date} — ${report.machine}\n`);
  for (const [label, value] of rows) process.stdout.write(`  ${label.padEnd(width)}  ${value}\n`);
}

const pctOf = (ratio) => `${Math.round(ratio * 100)}%`;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : round((sorted[middle - 1] + sorted[middle]) / 2, 3);
}
const log = (message) => process.stdout.write(`[bench] ${message}\n`);

main().catch((error) => {
  process.stderr.write(`bench failed: ${error.stack ?? error}\n`);
  process.exit(1);
});
