// `npm run soak`: the mesh at a steady open-loop rate for a long time (issue 10). Memory and
// latency must stay flat. Prints a row per minute and a verdict; writes
// bench/results/soak-latest.json. See docs/reliability.md.
//
// As the bench: a private broker, every service built (dist/) as its own process, and the load
// generator in another (bench/soak-worker.mjs). Work items are registered just ahead of their
// callbacks, over ACTIVE_CONVERSATIONS conversations at a time; a conversation that has had
// its ITEMS_PER_CONVERSATION items is replaced by a new one, and ended once its results are
// all injected, so the data set rolls over as in a real deployment.
//
//   SOAK_RATE      callbacks per second (default 500)
//   SOAK_MINUTES   minutes of load (default 30)
//   SOAK_CONVERSATIONS, SOAK_ITEMS_PER_CONVERSATION   the rolling set (default 100 × 20)
//   SOAK_RESULT_FILE   where the JSON goes (default bench/results/soak-latest.json)
//
// `node bench/soak.mjs --verdict [file]` judges a saved run again with the rules below (the
// verdict the run printed is kept as `verdict_at_run`), without running anything.
import { fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
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

const RATE = Number(process.env.SOAK_RATE ?? 500);
const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const ACTIVE_CONVERSATIONS = Number(process.env.SOAK_CONVERSATIONS ?? 100);
const ITEMS_PER_CONVERSATION = Number(process.env.SOAK_ITEMS_PER_CONVERSATION ?? 20);
const RESULT_FILE = process.env.SOAK_RESULT_FILE ?? path.join(ROOT, 'bench/results/soak-latest.json');
/** Every work item's timeout, and the services' REPLAY_TTL_MS (its default, given explicitly). */
const ITEM_TIMEOUT_MS = 60_000;
const REPLAY_TTL_MS = 600_000;
/**
 * The longest life of per-callback state a service holds by design: the ingress mirrors each
 * work item record until its deadline + REPLAY_TTL_MS. Memory is judged only after it.
 */
const WARM_UP_MINUTES = Math.ceil((ITEM_TIMEOUT_MS + REPLAY_TTL_MS) / 60_000) + 1;
/** Registration runs this far ahead of the send schedule. */
const AHEAD_MS = 2_000;
const REGISTER_CONCURRENCY = 32;
/** After the last callback, how long accepted results may take to arrive before they count as lost. */
const DRAIN_MS = 30_000;
/** A replaced conversation is ended once its results are all in, or after this long regardless. */
const END_AFTER_MS = 60_000;
/** Each minute's row waits this long past the minute, so its last callbacks can arrive. */
const ROW_DELAY_MS = 5_000;
const MINUTE_MS = 60_000;
const INTERNAL_TOKEN = 'soak-internal-token-0123456789';
const SERVICES = [
  ['token-authority', 'TOKEN_AUTHORITY_PORT', 'TA'],
  ['callback-ingress', 'INGRESS_PORT', 'ING'],
  ['ordering-sequencer', 'SEQUENCER_PORT', 'SEQ'],
  ['conversation-injector', 'INJECTOR_PORT', 'INJ'],
  ['tool-dispatcher', 'DISPATCHER_PORT', 'DIS'],
];
/** RSS is read this often; a minute's row shows the mean, the memory verdict fits all of them. */
const RSS_EVERY_MS = 10_000;
/** Memory verdict: growth over the last two thirds below max(MB floor, share of the RSS then). */
const RSS_GROWTH_FLOOR_MB = 30;
const RSS_GROWTH_SHARE = 0.1;
/** Latency verdict: p99 of the last minute at most max(K × p99 of minute 2, that + floor). */
const P99_FACTOR = 2;
const P99_FLOOR_MS = 10;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let CONTRACT;

async function main() {
  ensureBuilt(log);
  // Wire names come from the built contract, never spelled here.
  CONTRACT = await import('../dist/libs/contracts/src/index.js');
  const nats = await startNats('bc-soak');
  const mesh = await startMesh(nats.url);
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 });
  const run = new SoakRun(nc, mesh, nats);
  log(
    `soak: ${RATE} callbacks/s for ${MINUTES} min over ${ACTIVE_CONVERSATIONS} conversations at a time ` +
      `(${ITEMS_PER_CONVERSATION} items each); load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  await run.execute();
  await nc.close();
  await stopAll(mesh.services);
  await stopNats(nats);

  const report = run.report();
  printTable(report);
  mkdirSync(path.dirname(RESULT_FILE), { recursive: true });
  writeFileSync(RESULT_FILE, JSON.stringify(report, null, 2) + '\n');
  log(`wrote ${path.relative(ROOT, RESULT_FILE)}`);
  process.exit(report.verdict.pass ? 0 : 1);
}

// ---------------------------------------------------------------------------------------

/** One run: the registration pipeline, the worker, live arrivals, conversation turnover, samples. */
class SoakRun {
  constructor(nc, mesh, nats) {
    this.nc = nc;
    this.mesh = mesh;
    this.nats = nats;
    this.total = Math.round(RATE * MINUTES * 60);
    /** Work items by id: what happened to each callback, until it is fully accounted for. */
    this.items = new Map();
    this.minutes = [];
    this.samples = [];
    /** [minutes since the start, {process: RSS MB}] every RSS_EVERY_MS. */
    this.rss = [];
    this.slots = Array.from({ length: ACTIVE_CONVERSATIONS }, () => ({ conversation: undefined }));
    this.retired = new Set();
    this.conversationsOpened = 0;
    this.conversationsEnded = 0;
    this.issued = 0;
    this.registerErrors = 0;
    this.duplicates = 0;
    this.unknownArrivals = 0;
  }

  async execute() {
    this.followLive();
    this.worker = track(
      fork(path.join(ROOT, 'bench/soak-worker.mjs'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
    );
    const workerDone = new Promise((resolve) =>
      this.worker.on('message', (message) => (message.type === 'done' ? resolve() : this.onResults(message.results))),
    );
    this.startedAt = now();
    this.sample();
    this.worker.send({ type: 'start', origin: this.mesh.ingress.origin, rate: RATE });
    const timers = [
      setInterval(() => void this.endFinished(), 1_000),
      this.minuteTimer(),
      setInterval(() => this.sampleRss(), RSS_EVERY_MS),
    ];
    await Promise.all(Array.from({ length: REGISTER_CONCURRENCY }, () => this.registrationLane()));
    this.worker.send({ type: 'stop' });
    await workerDone;
    log(`all ${this.total} callbacks sent; waiting up to ${DRAIN_MS / 1000} s for the last results`);
    const drainUntil = now() + DRAIN_MS;
    while (now() < drainUntil && this.outstanding() > 0) await sleep(100);
    clearInterval(timers[0]);
    clearTimeout(timers[1].handle);
    clearInterval(timers[2]);
    for (const slot of this.slots) if (slot.conversation) this.retire(slot.conversation);
    await this.endFinished(true);
    if (this.samples.length < MINUTES + 1) this.sample();
    for (let minute = 0; minute < MINUTES; minute++) this.closeMinute(minute);
  }

  // ---- registration, just ahead of the schedule -------------------------------------------

  async registrationLane() {
    while (this.issued < this.total) {
      const dueBy = Math.min(this.total, Math.floor(((now() - this.startedAt + AHEAD_MS) / 1000) * RATE));
      if (this.issued >= dueBy) {
        await sleep(5);
        continue;
      }
      const index = this.issued++;
      const conversation = this.conversationFor(index);
      try {
        await conversation.opened;
        const reply = await request(this.nc, CONTRACT.API_SUBJECTS.workItemsRegister, {
          conversation_id: conversation.id,
          kind: 'tool',
          timeout_ms: ITEM_TIMEOUT_MS,
        });
        conversation.registered++;
        this.items.set(reply.work_item_id, { conversation });
        this.worker.send({
          type: 'requests',
          requests: [
            {
              id: reply.work_item_id,
              path: `/api/v1/webhooks/${reply.work_item_id}`,
              token: reply.callback.headers['x-callback-token'],
              body: JSON.stringify({ result: { order: `A-${index}`, status: 'shipped' } }),
            },
          ],
        });
      } catch (error) {
        this.registerErrors++;
        if (this.registerErrors <= 5) log(`registration failed: ${error.message}`);
      } finally {
        conversation.settled++;
      }
    }
  }

  /** The conversation item `index` goes to; a slot that has had all its items gets a new one. */
  conversationFor(index) {
    const slot = this.slots[index % ACTIVE_CONVERSATIONS];
    if (!slot.conversation || slot.conversation.issued >= ITEMS_PER_CONVERSATION) {
      if (slot.conversation) this.retire(slot.conversation);
      const id = `soak-${this.conversationsOpened++}`;
      slot.conversation = {
        id,
        issued: 0,
        registered: 0,
        settled: 0,
        answered: 0,
        accepted: 0,
        arrived: 0,
        opened: request(this.nc, CONTRACT.API_SUBJECTS.conversationsOpen, { conversation_id: id, tenant_id: 'soak' }),
      };
    }
    slot.conversation.issued++;
    return slot.conversation;
  }

  retire(conversation) {
    conversation.retiredAt = now();
    this.retired.add(conversation);
  }

  /** Ends replaced conversations whose results are all in (or that waited too long). */
  async endFinished(all = false) {
    const ready = [...this.retired].filter(
      (c) =>
        all ||
        (c.settled === c.issued && c.answered === c.registered && c.arrived >= c.accepted) ||
        now() - c.retiredAt > END_AFTER_MS,
    );
    for (const conversation of ready) this.retired.delete(conversation);
    await pool(ready, 16, async (conversation) => {
      await request(this.nc, CONTRACT.API_SUBJECTS.conversationsEnd, { conversation_id: conversation.id }).catch(
        (error) => log(`end ${conversation.id} failed: ${error.message}`),
      );
      this.conversationsEnded++;
    });
  }

  // ---- answers and arrivals -------------------------------------------------------------------

  minuteOf(time) {
    return Math.min(MINUTES - 1, Math.max(0, Math.floor((time - this.startedAt) / MINUTE_MS)));
  }

  stats(minute) {
    this.minutes[minute] ??= { sent: 0, accepted: 0, errors: 0, late: 0, arrived: 0, latencies: [], statuses: {} };
    return this.minutes[minute];
  }

  onResults(results) {
    for (const result of results) {
      const item = this.items.get(result.id);
      if (!item) continue;
      const minute = this.minuteOf(result.sentAt);
      const stats = this.stats(minute);
      stats.sent++;
      if (result.late) stats.late++;
      item.conversation.answered++;
      if (result.status !== 202 && result.status !== 200) {
        stats.errors++;
        stats.statuses[result.status] = (stats.statuses[result.status] ?? 0) + 1;
        this.items.delete(result.id);
        continue;
      }
      stats.accepted++;
      item.conversation.accepted++;
      item.sentAt = result.sentAt;
      item.minute = minute;
      if (item.arrivedAt !== undefined) this.arrived(result.id, item);
    }
  }

  followLive() {
    this.nc.subscribe(CONTRACT.LIVE_MESSAGES_WILDCARD, {
      callback: (_error, msg) => {
        const id = msg.json().source?.work_item_id;
        const item = id && this.items.get(id);
        if (!item) {
          if (id) this.unknownArrivals++;
          return;
        }
        if (item.arrivedAt !== undefined) {
          this.duplicates++;
          return;
        }
        item.arrivedAt = now();
        item.conversation.arrived++;
        if (item.sentAt !== undefined) this.arrived(id, item);
      },
    });
  }

  arrived(id, item) {
    const stats = this.stats(item.minute);
    stats.arrived++;
    stats.latencies.push(item.arrivedAt - item.sentAt);
    this.items.delete(id);
  }

  outstanding() {
    return this.minutes.reduce((sum, m) => sum + (m ? m.accepted - m.arrived : 0), 0);
  }

  // ---- samples ---------------------------------------------------------------------------------

  minuteTimer() {
    const timer = {};
    const schedule = (minute) => {
      const at = this.startedAt + (minute + 1) * MINUTE_MS;
      timer.handle = setTimeout(
        () => {
          this.sample();
          setTimeout(() => this.closeMinute(minute), ROW_DELAY_MS);
          if (minute + 1 < MINUTES) schedule(minute + 1);
        },
        Math.max(0, at - now()),
      );
    };
    schedule(0);
    return timer;
  }

  processes() {
    return [...this.mesh.services.map((s) => [s.short, s.child.pid]), ['NATS', this.nats.child.pid]];
  }

  /** CPU ticks (and RSS) of every service and the broker, and the machine's load, at a minute's edge. */
  sample() {
    this.samples.push({
      at: now(),
      load1: os.loadavg()[0],
      processes: Object.fromEntries(this.processes().map(([name, pid]) => [name, procStats(pid)])),
    });
  }

  sampleRss() {
    const minutes = (now() - this.startedAt) / MINUTE_MS;
    this.rss.push([
      minutes,
      Object.fromEntries(this.processes().map(([name, pid]) => [name, procStats(pid).rssKb / 1024])),
    ]);
  }

  /** Mean RSS of every process over one minute (the edge sample if there is none in it). */
  meanRss(minute, fallback) {
    const inMinute = this.rss.filter(([t]) => t >= minute && t < minute + 1);
    if (inMinute.length === 0) return mapValues(fallback, (p) => round(p.rssKb / 1024, 1));
    return mapValues(inMinute[0][1], (_, name) =>
      round(inMinute.reduce((sum, [, mb]) => sum + mb[name], 0) / inMinute.length, 1),
    );
  }

  closeMinute(minute) {
    const stats = this.stats(minute);
    if (stats.row) return;
    const before = this.samples[minute];
    const after = this.samples[minute + 1] ?? this.samples.at(-1);
    const seconds = (after.at - before.at) / 1000;
    const latencies = [...stats.latencies].sort((a, b) => a - b);
    stats.row = {
      minute: minute + 1,
      sent: stats.sent,
      sent_per_s: round(stats.sent / 60, 1),
      accepted: stats.accepted,
      late: stats.late,
      errors: stats.errors,
      lost: stats.accepted - stats.arrived,
      p50_ms: round(percentile(latencies, 0.5), 2),
      p99_ms: round(percentile(latencies, 0.99), 2),
      p999_ms: round(percentile(latencies, 0.999), 2),
      over_100ms: latencies.filter((ms) => ms > 100).length,
      load1: round(after.load1, 2),
      rss_mb: this.meanRss(minute, after.processes),
      cpu_pct: mapValues(after.processes, (p, name) =>
        round(((p.ticks - before.processes[name].ticks) / CLOCK_TICKS / seconds) * 100, 1),
      ),
      ...(Object.keys(stats.statuses).length > 0 ? { error_statuses: stats.statuses } : {}),
    };
    printRow(stats.row, minute === 0);
  }

  // ---- the verdict ------------------------------------------------------------------------------

  report() {
    // Lost is final only now: every accepted result had the drain to arrive.
    const rows = this.minutes.map((stats) => ({ ...stats.row, lost: stats.accepted - stats.arrived }));
    const totals = {
      callbacks: this.total,
      sent: sum(rows, 'sent'),
      accepted: sum(rows, 'accepted'),
      errors: sum(rows, 'errors') + this.registerErrors,
      registration_errors: this.registerErrors,
      late: sum(rows, 'late'),
      lost: sum(rows, 'lost'),
      duplicates: this.duplicates,
      conversations_opened: this.conversationsOpened,
      conversations_ended: this.conversationsEnded,
    };
    return {
      date: new Date().toISOString(),
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
      config: {
        rate: RATE,
        minutes: MINUTES,
        active_conversations: ACTIVE_CONVERSATIONS,
        items_per_conversation: ITEMS_PER_CONVERSATION,
      },
      load_average_during: rows.map((row) => row.load1),
      totals,
      minutes: rows,
      rss_samples: this.rss.map(([t, mb]) => [round(t, 3), mapValues(mb, (v) => round(v, 1))]),
      verdict: verdictOf(rows, totals, this.rss),
    };
  }
}

/**
 * Memory is flat when, for every service, the least-squares slope of its RSS (read every 10 s)
 * over the last two thirds of the run, times their length, stays below max(30 MB, 10 % of its
 * mean RSS in the minute that starts them). The window starts no earlier than WARM_UP_MINUTES
 * (12): until then the ingress's record mirror is still filling by design (a record stays
 * until its deadline + REPLAY_TTL_MS), which is a bounded cache, not a leak. A slope fitted to
 * ~100 points, not two readings:
 * V8 grows and shrinks a service's heap by 20–40 MB between collections (seen in trial runs:
 * 168 → 201 → 168 MB minute to minute), which a two-point difference would take for a trend.
 * At 500/s, 30 MB over 20 minutes is ~50 bytes per callback: a per-callback leak shows; a cache
 * that fills and then stays bounded does not.
 * Latency is flat when the p99 of the last minute is at most max(2 × p99 of minute 2, p99 of
 * minute 2 + 10 ms): minute 1 includes the JIT warming up, and on a shared two-core machine a
 * single-digit-millisecond p99 moves by 2× with the neighbours' load, which is not the mesh.
 * One minute against one minute is at the mercy of either being unusually quiet, so the
 * report adds the trend: the median of the per-minute p99 over the last third against that of
 * minutes 2 to the end of the first third (reported, not judged).
 */
function verdictOf(rows, totals, rssSamples) {
  if (rows.length < 3) return { pass: false, note: 'too few minutes for a verdict (at least 3)' };
  const from = Math.max(Math.floor(rows.length / 3), WARM_UP_MINUTES);
  if (from >= rows.length - 2) return { pass: false, note: `too few minutes after the warm-up (${WARM_UP_MINUTES})` };
  const memory = {};
  for (const name of Object.keys(rows[0].rss_mb)) {
    const points = rssSamples.filter(([t]) => t >= from).map(([t, mb]) => [t, mb[name]]);
    const growth = slope(points) * (points.at(-1)[0] - points[0][0]);
    const limit = Math.max(RSS_GROWTH_FLOOR_MB, RSS_GROWTH_SHARE * rows[from].rss_mb[name]);
    memory[name] = { growth_mb: round(growth, 1), limit_mb: round(limit, 1), flat: growth <= limit };
  }
  // The broker's store grows with the data set by design (streams keep 1–7 days): reported, not judged.
  const judged = Object.entries(memory).filter(([name]) => name !== 'NATS');
  const p99Minute2 = rows[1].p99_ms;
  const p99Last = rows.at(-1).p99_ms;
  const p99Limit = Math.max(P99_FACTOR * p99Minute2, p99Minute2 + P99_FLOOR_MS);
  const latency = { p99_minute_2_ms: p99Minute2, p99_last_minute_ms: p99Last, limit_ms: round(p99Limit, 2) };
  latency.flat = p99Last <= p99Limit;
  const third = Math.max(2, Math.floor(rows.length / 3));
  latency.trend = {
    median_p99_first_third_ms: median(rows.slice(1, third).map((row) => row.p99_ms)),
    median_p99_last_third_ms: median(rows.slice(rows.length - third).map((row) => row.p99_ms)),
  };
  const memoryFlat = judged.every(([, m]) => m.flat);
  const delivered = totals.lost === 0 && totals.errors === 0 && totals.duplicates === 0;
  return {
    pass: memoryFlat && latency.flat && delivered,
    memory_flat: memoryFlat,
    memory_from_minute: from,
    memory,
    latency,
    delivered,
  };
}

function slope(points) {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

// ---- processes ------------------------------------------------------------------------------

async function startMesh(natsUrl) {
  const ports = Object.fromEntries(await Promise.all(SERVICES.map(async ([name]) => [name, await freePort()])));
  const specs = SERVICES.map(([name, portEnv]) => ({
    name,
    port: ports[name],
    env: {
      NATS_URL: natsUrl,
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      LOG_LEVEL: 'warn',
      // One load generator is one source: the per-source limit would cap it at 500/s.
      INGRESS_RATE_LIMIT_PER_SOURCE: '1000000',
      REPLAY_TTL_MS: String(REPLAY_TTL_MS),
      PUBLIC_BASE_URL: `http://127.0.0.1:${ports['callback-ingress']}`,
      [portEnv]: String(ports[name]),
    },
  }));
  const services = await startServices(specs);
  for (const service of services) {
    service.short = SERVICES.find(([name]) => name === service.name)[2];
    service.child.once('exit', (code, signal) => {
      if (!stopping) log(`${service.name} exited (${code ?? signal}) during the soak`);
    });
  }
  return { services, ingress: services.find((s) => s.name === 'callback-ingress') };
}

let stopping = false;

async function stopAll(services) {
  stopping = true;
  await stopServices(services);
}

const NAMES = [...SERVICES.map(([, , short]) => short), 'NATS'];

function printRow(row, header) {
  if (header) {
    process.stdout.write(
      `\n${'min'.padStart(3)} ${'sent/s'.padStart(6)} ${'late'.padStart(5)} ${'err'.padStart(4)} ${'lost'.padStart(4)} ` +
        `${'p50ms'.padStart(6)} ${'p99ms'.padStart(7)} ${'load'.padStart(5)} | RSS MB ${NAMES.map((n) => n.padStart(5)).join(' ')} ` +
        `| CPU % ${NAMES.map((n) => n.padStart(5)).join(' ')}\n`,
    );
  }
  process.stdout.write(
    `${String(row.minute).padStart(3)} ${String(row.sent_per_s).padStart(6)} ${String(row.late).padStart(5)} ` +
      `${String(row.errors).padStart(4)} ${String(row.lost).padStart(4)} ${String(row.p50_ms).padStart(6)} ` +
      `${String(row.p99_ms).padStart(7)} ${String(row.load1).padStart(5)} | RSS MB ` +
      `${NAMES.map((n) => String(row.rss_mb[n]).padStart(5)).join(' ')} | CPU % ` +
      `${NAMES.map((n) => String(row.cpu_pct[n]).padStart(5)).join(' ')}\n`,
  );
}

function printTable(report) {
  process.stdout.write(`\nBackchannel soak — ${report.date} — ${report.machine}\n`);
  report.minutes.forEach((row, index) => printRow(row, index === 0));
  const { totals, verdict } = report;
  process.stdout.write(
    `\ntotals: ${totals.accepted} accepted of ${totals.callbacks}, errors ${totals.errors} ` +
      `(registration ${totals.registration_errors}), late ${totals.late}, lost ${totals.lost}, duplicates ${totals.duplicates}, ` +
      `conversations opened ${totals.conversations_opened}, ended ${totals.conversations_ended}\n`,
  );
  if (verdict.note) {
    process.stdout.write(`verdict: ${verdict.note}\n`);
    return;
  }
  for (const [name, m] of Object.entries(verdict.memory)) {
    const judged = name === 'NATS' ? ' (broker: reported, not judged)' : '';
    process.stdout.write(
      `  memory ${name.padEnd(4)} growth ${m.growth_mb} MB from minute ${verdict.memory_from_minute} (limit ${m.limit_mb} MB)${judged}\n`,
    );
  }
  const l = verdict.latency;
  process.stdout.write(
    `  latency p99 last minute ${l.p99_last_minute_ms} ms vs minute 2 ${l.p99_minute_2_ms} ms (limit ${l.limit_ms} ms); ` +
      `trend: median p99 ${l.trend.median_p99_first_third_ms} ms (minute 2 to a third) -> ` +
      `${l.trend.median_p99_last_third_ms} ms (last third)\n`,
  );
  process.stdout.write(
    `verdict: memory ${verdict.memory_flat ? 'flat' : 'GROWING'}, latency ${l.flat ? 'flat' : 'RISING'}, ` +
      `delivery ${verdict.delivered ? 'complete' : 'INCOMPLETE'} -> ${verdict.pass ? 'PASS' : 'FAIL'}\n`,
  );
}

// ---- small helpers ---------------------------------------------------------------------------

const sum = (rows, key) => rows.reduce((total, row) => total + (row[key] ?? 0), 0);
const median = (values) =>
  round(
    percentile(
      [...values].sort((a, b) => a - b),
      0.5,
    ),
    2,
  );
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const mapValues = (object, fn) => Object.fromEntries(Object.entries(object).map(([k, v]) => [k, fn(v, k)]));
const log = (message) => process.stdout.write(`[soak] ${message}\n`);

/** Re-applies verdictOf to a saved run (its rows and RSS samples), printing the table again. */
function rejudge(file) {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  report.verdict_at_run ??= report.verdict;
  report.verdict = verdictOf(report.minutes, report.totals, report.rss_samples);
  report.verdict_judged_at = new Date().toISOString();
  printTable(report);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  process.exit(report.verdict.pass ? 0 : 1);
}

if (process.argv[2] === '--verdict') rejudge(process.argv[3] ?? RESULT_FILE);
else
  main().catch((error) => {
    process.stderr.write(`soak failed: ${error.stack ?? error}\n`);
    process.exit(1);
  });
