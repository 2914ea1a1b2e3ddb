// `npm run demo`: the whole loop on one machine, printed as a live transcript.
//   - three async tools run in parallel and finish out of order (slowest first-registered),
//     yet are injected in registration order;
//   - a tool that never answers in time becomes a `work_item_timed_out` error at its place;
//   - a tenant adds a system message through the API, injected at once.
// Everything runs on a private broker and random ports; nothing is left behind. The last
// line is `DEMO SUMMARY {json}`: what happened, for a machine to check
// (test/mesh/demo.e2e-spec.ts runs the demo in the test suite). Exit code 0 when every
// check holds.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { buildReason } from './build-state.mjs';
import { SERVICES, entryOf } from './services.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const INTERNAL_TOKEN = 'demo-internal-token-0123456789';
const SIGNING_SECRET = 'whsec_ZGVtby1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5';
const CONVERSATION = 'demo-call-1';
const SUMMARY_PREFIX = 'DEMO SUMMARY ';
/** Three tools run in parallel; the first registered works longest, so they finish out of order. */
const PARALLEL_TOOLS = [
  { name: 'order_status', workMs: 1_500 },
  { name: 'crm_update', workMs: 300 },
  { name: 'compliance_check', workMs: 800 },
];
/** A tool given 1 s that needs 5 s: its deadline turns it into an error at its place. */
const SLOW_TOOL = { name: 'fraud_screen', workMs: 5_000, timeoutMs: 1_000 };
const children = [];
const started = Date.now();

// Whatever ends the demo (an error, a signal), it leaves no service or broker behind.
process.on('exit', () => children.forEach((child) => child.exitCode === null && child.kill('SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(1));
const say = (text) =>
  process.stdout.write(`${`+${((Date.now() - started) / 1000).toFixed(1)}s`.padStart(7)}  ${text}\n`);

async function main() {
  build();
  // The wire names come from the contract lib itself (built), never spelled here.
  const { API_SUBJECTS: S, INJECTED_ERROR_CODE } = await import('../dist/libs/contracts/src/index.js');
  const nats = await startNats();
  const ports = Object.fromEntries(await Promise.all(SERVICES.map(async (s) => [s.name, await freePort()])));
  const env = {
    ...process.env,
    NATS_URL: nats.url,
    INTERNAL_API_TOKEN: INTERNAL_TOKEN,
    LOG_LEVEL: 'warn',
    DISPATCHER_ALLOW_PRIVATE_NETWORKS: 'true',
    PUBLIC_BASE_URL: `http://127.0.0.1:${ports['callback-ingress']}`,
    ...Object.fromEntries(SERVICES.map((s) => [s.portEnv, String(ports[s.name])])),
  };
  for (const service of SERVICES) start(process.execPath, [entryOf(service.name)], env);
  const providerPort = await freePort();
  start(process.execPath, ['examples/provider/dist/main.js'], {
    ...process.env,
    PORT: String(providerPort),
    SIGNING_SECRET,
  });
  for (const service of SERVICES) await poll(() => ready(`http://127.0.0.1:${ports[service.name]}/readyz`), 60_000);
  say('mesh ready: token-authority, callback-ingress, ordering-sequencer, conversation-injector, tool-dispatcher');

  const nc = await connect({ servers: nats.url });
  const api = (subject, body) => nc.request(subject, JSON.stringify(body), { timeout: 20_000 }).then((m) => m.json());
  const injector = `http://127.0.0.1:${ports['conversation-injector']}`;
  const apiKey = (await api(S.apiKeysCreate, { tenant_id: 'acme' })).api_key;
  await api(S.conversationsOpen, { conversation_id: CONVERSATION, tenant_id: 'acme' });
  say(`conversation ${CONVERSATION} opened for tenant acme; following it live over SSE`);
  const transcript = followSse(`${injector}/api/v1/conversations/${CONVERSATION}/events`, apiKey);
  await transcript.ready;

  const tool = ({ name, workMs, timeoutMs = 30_000 }) => ({
    conversation_id: CONVERSATION,
    call_control_id: `v3:demo-call-control-${name}`,
    name,
    tool: {
      url: `http://127.0.0.1:${providerPort}/tool`,
      mode: 'async',
      timeout_ms: timeoutMs,
      signing_secret: SIGNING_SECRET,
    },
    arguments: { a: workMs, b: 1, delay_ms: workMs },
  });
  const plan = PARALLEL_TOOLS.map(({ name, workMs }) => `${name} (${workMs / 1000} s)`).join(', ');
  say(`starting three async tools that then work in parallel: ${plan}`);
  // Invoked one after another so that sequences follow this order (1 = the slowest): each
  // invoke answers as soon as the provider acknowledges, so the three still work at once.
  const parallel = [];
  for (const spec of PARALLEL_TOOLS) {
    const answer = await api(S.toolsInvoke, tool(spec));
    say(`  acknowledged: ${spec.name} ${answer.work_item_id} sequence ${answer.sequence} (${answer.state})`);
    parallel.push({ ...spec, workItemId: answer.work_item_id, sequence: answer.sequence });
  }
  say(
    `invoking ${SLOW_TOOL.name} with a ${SLOW_TOOL.timeoutMs / 1000} s timeout; the provider needs ${SLOW_TOOL.workMs / 1000} s`,
  );
  const slow = await api(S.toolsInvoke, tool(SLOW_TOOL));
  say(`  acknowledged: ${SLOW_TOOL.name} ${slow.work_item_id} sequence ${slow.sequence}`);

  await poll(() => transcript.finals().length >= PARALLEL_TOOLS.length + 1, 20_000);
  say('a tenant adds a system message through the Add Messages API');
  const added = await fetch(`${injector}/api/v1/conversations/${CONVERSATION}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'system', content: 'The caller is a premium customer.' }] }),
  });
  say(`  answered ${added.status}`);
  await poll(() => transcript.apiMessage(), 10_000);

  // When each tool's result was accepted (the work item's end), as the token authority recorded it.
  for (const item of parallel) {
    item.endedAt = (await api(S.workItemsGet, { work_item_id: item.workItemId })).ended_at;
  }
  await api(S.conversationsEnd, { conversation_id: CONVERSATION });
  say('conversation ended');

  const finished = [...parallel].sort((a, b) => Date.parse(a.endedAt) - Date.parse(b.endedAt));
  const finishedOrder = finished.map((item) => item.sequence);
  const injectedOrder = transcript.finals().map((message) => message.source.sequence);
  const timedOut = transcript.finals().find((message) => message.source.sequence === slow.sequence);
  const apiMessage = transcript.apiMessage();
  const checks = {
    finished_out_of_order: finishedOrder.some((sequence, i) => i > 0 && sequence < finishedOrder[i - 1]),
    injected_in_order: injectedOrder.every((sequence, i) => i === 0 || sequence > injectedOrder[i - 1]),
    timeout_injected_as_error:
      timedOut?.source.type === 'timeout' && timedOut.errors?.[0]?.code === INJECTED_ERROR_CODE.work_item_timed_out,
    api_message_injected: added.status === 202 && apiMessage?.role === 'system',
  };
  const ok = Object.values(checks).every(Boolean);
  say(
    `the tools finished in the order ${finished.map((item) => `${item.name} (sequence ${item.sequence})`).join(', ')}`,
  );
  say(
    `results were injected in sequence order ${injectedOrder.join(', ')}: ${checks.injected_in_order ? 'yes' : 'NO'}`,
  );

  transcript.close();
  await nc.close();
  await stopAll(nats);
  say(ok ? 'demo complete' : `demo FAILED: ${JSON.stringify(checks)}`);
  const summary = {
    ok,
    checks,
    broker: nats.url,
    parallel_tools: parallel.map(({ name, workMs, sequence, endedAt }) => ({
      name,
      work_ms: workMs,
      sequence,
      ended_at: endedAt,
    })),
    finished_order: finishedOrder,
    injected_order: injectedOrder,
    timeout: timedOut && {
      name: SLOW_TOOL.name,
      sequence: timedOut.source.sequence,
      source_type: timedOut.source.type,
      code: timedOut.errors?.[0]?.code,
      position: timedOut.position,
    },
    api_message: apiMessage && { status: added.status, role: apiMessage.role, position: apiMessage.position },
  };
  process.stdout.write(`${SUMMARY_PREFIX}${JSON.stringify(summary)}\n`);
  process.exit(ok ? 0 : 1);
}

/** Stops the services and the provider gracefully, then the broker (last: they drain into it). */
async function stopAll(nats) {
  const services = children.filter((child) => child !== nats.child);
  for (const child of services) child.kill('SIGTERM');
  await Promise.all(services.map(exited));
  await stopNats(nats);
}

function exited(child) {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve),
  );
}

/**
 * A minimal SSE reader (the demo depends on nothing but the mesh): prints each message. Over
 * node:http without keep-alive: fetch would keep a spare connection to the injector open
 * after the stream is aborted, holding up its graceful stop.
 */
function followSse(url, apiKey) {
  const messages = [];
  let markReady;
  const ready = new Promise((resolve) => (markReady = resolve));
  const stream = request(url, { headers: { authorization: `Bearer ${apiKey}` }, agent: false }, (response) => {
    let buffer = '';
    response.setEncoding('utf8');
    response.on('data', (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.startsWith(': ready')) markReady();
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (data) show(JSON.parse(data.slice(6)));
      }
    });
  });
  stream.on('error', () => undefined);
  stream.end();
  function show(message) {
    messages.push(message);
    const source = message.source;
    const what = message.errors
      ? `error ${message.errors[0].code}`
      : message.progress
        ? `progress "${message.progress.message}"`
        : message.result !== undefined
          ? `result ${JSON.stringify(message.result)}`
          : `"${message.content}"`;
    const item = source.sequence ? ` sequence ${source.sequence}` : '';
    say(`  TRANSCRIPT #${message.position} ${message.role} [${source.type}${item}] ${what}`);
  }
  return {
    ready,
    /** Each work item's final message (result, error, timeout), in position order. */
    finals: () => messages.filter((m) => m.source.sequence && m.source.type !== 'progress'),
    apiMessage: () => messages.find((m) => m.source.type === 'api'),
    close: () => stream.destroy(),
  };
}

function build() {
  // The test suite's global setup has just built dist/ (and honours the same variable).
  const reason = process.env.BACKCHANNEL_SKIP_BUILD === '1' ? undefined : buildReason(ROOT);
  if (reason)
    run(process.execPath, ['node_modules/@nestjs/cli/bin/nest.js', 'build', '--all'], `building the mesh (${reason})`);
  if (providerBuildStale()) {
    run(
      process.execPath,
      ['node_modules/typescript/bin/tsc', '-p', 'examples/provider/tsconfig.json'],
      'building the example provider',
    );
  }
}

/** Whether examples/provider/dist is missing or older than a source of the provider. */
function providerBuildStale() {
  const built = path.join(ROOT, 'examples/provider/dist/main.js');
  if (!existsSync(built)) return true;
  const sources = path.join(ROOT, 'examples/provider/src');
  const builtAt = statSync(built).mtimeMs;
  return readdirSync(sources).some(
    (name) => name.endsWith('.ts') && statSync(path.join(sources, name)).mtimeMs > builtAt,
  );
}

function run(cmd, args, what) {
  say(what);
  const result = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${what} failed`);
}

function start(cmd, args, env) {
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return child;
}

async function startNats() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bc-demo-'));
  const bin =
    process.env.NATS_SERVER_BIN ??
    ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'].find(existsSync);
  if (!bin) throw new Error('nats-server is missing: run scripts/ensure-nats-server.sh');
  const child = spawn(
    bin,
    ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', path.join(dir, 'store'), '--ports_file_dir', dir],
    { stdio: 'ignore' },
  );
  // Killed with the rest on an early exit, its store removed.
  children.push(child);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const url = await poll(() => {
    const file = readdirSync(dir).find((name) => name.endsWith('.ports'));
    return file && JSON.parse(readFileSync(path.join(dir, file), 'utf8')).nats[0];
  });
  return { url, child, dir };
}

async function stopNats(nats) {
  nats.child.kill('SIGTERM');
  await exited(nats.child);
  rmSync(nats.dir, { recursive: true, force: true });
}

async function ready(url) {
  const answer = await fetch(url).catch(() => undefined);
  return answer?.status === 200;
}

async function poll(probe, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

main().catch((error) => {
  process.stderr.write(`demo failed: ${error.stack ?? error}\n`);
  process.exit(1);
});
