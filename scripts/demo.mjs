// `npm run demo`: the whole loop on one machine, printed as a live transcript.
//   - three async tools run in parallel and finish out of order (slowest first-registered),
//     yet are injected in registration order;
//   - a tool that never answers in time becomes a `work_item_timed_out` error at its place;
//   - a tenant adds a system message through the API, injected at once.
// Everything runs on a private broker and random ports; nothing is left behind.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
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
const children = [];
const started = Date.now();

process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));
const say = (text) =>
  process.stdout.write(`${`+${((Date.now() - started) / 1000).toFixed(1)}s`.padStart(7)}  ${text}\n`);

async function main() {
  build();
  // The wire names come from the contract lib itself (built), never spelled here.
  const { API_SUBJECTS: S } = await import('../dist/libs/contracts/src/index.js');
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

  const tool = (name, delayMs, timeoutMs = 30_000) => ({
    conversation_id: CONVERSATION,
    call_control_id: `v3:demo-call-control-${name}`,
    name,
    tool: {
      url: `http://127.0.0.1:${providerPort}/tool`,
      mode: 'async',
      timeout_ms: timeoutMs,
      signing_secret: SIGNING_SECRET,
    },
    arguments: { a: delayMs, b: 1, delay_ms: delayMs },
  });
  say('invoking three async tools in parallel: order_status (1.5 s), crm_update (0.3 s), compliance_check (0.8 s)');
  const invoked = await Promise.all([
    api(S.toolsInvoke, tool('order_status', 1_500)),
    api(S.toolsInvoke, tool('crm_update', 300)),
    api(S.toolsInvoke, tool('compliance_check', 800)),
  ]);
  for (const answer of invoked)
    say(`  acknowledged: ${answer.work_item_id} sequence ${answer.sequence} (${answer.state})`);
  say('invoking fraud_screen with a 1 s timeout; the provider needs 5 s');
  const slow = await api(S.toolsInvoke, tool('fraud_screen', 5_000, 1_000));
  say(`  acknowledged: ${slow.work_item_id} sequence ${slow.sequence}`);

  await poll(() => transcript.finals() >= 4, 20_000);
  say('a tenant adds a system message through the Add Messages API');
  const added = await fetch(`${injector}/api/v1/conversations/${CONVERSATION}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'system', content: 'The caller is a premium customer.' }] }),
  });
  say(`  answered ${added.status}`);
  await poll(() => transcript.count() >= transcript.finals() + 1 && transcript.hasApi(), 10_000);
  await api(S.conversationsEnd, { conversation_id: CONVERSATION });
  say('conversation ended');

  const order = transcript.finalsInOrder();
  const inOrder = order.every((sequence, i) => i === 0 || sequence > order[i - 1]);
  say(`results were injected in sequence order ${order.join(', ')}: ${inOrder ? 'yes' : 'NO'}`);
  transcript.close();
  await nc.close();
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(
    children.map(
      (child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve))),
    ),
  );
  await stopNats(nats);
  say(inOrder ? 'demo complete' : 'demo FAILED: out of order');
  process.exit(inOrder ? 0 : 1);
}

/** A minimal SSE reader (the demo depends on nothing but the mesh): prints each message. */
function followSse(url, apiKey) {
  const controller = new AbortController();
  const messages = [];
  let markReady;
  const ready = new Promise((resolve) => (markReady = resolve));
  void (async () => {
    const response = await fetch(url, { headers: { authorization: `Bearer ${apiKey}` }, signal: controller.signal });
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.startsWith(': ready')) markReady();
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (data) show(JSON.parse(data.slice(6)));
      }
    }
  })().catch(() => undefined);
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
  const finals = () => messages.filter((m) => m.source.sequence && m.source.type !== 'progress');
  return {
    ready,
    count: () => messages.length,
    finals: () => finals().length,
    finalsInOrder: () => finals().map((m) => m.source.sequence),
    hasApi: () => messages.some((m) => m.source.type === 'api'),
    close: () => controller.abort(),
  };
}

function build() {
  const reason = buildReason(ROOT);
  if (reason)
    run(process.execPath, ['node_modules/@nestjs/cli/bin/nest.js', 'build', '--all'], `building the mesh (${reason})`);
  if (!existsSync(path.join(ROOT, 'examples/provider/dist/main.js'))) {
    run(
      process.execPath,
      ['node_modules/typescript/bin/tsc', '-p', 'examples/provider/tsconfig.json'],
      'building the example provider',
    );
  }
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
  const url = await poll(() => {
    const file = readdirSync(dir).find((name) => name.endsWith('.ports'));
    return file && JSON.parse(readFileSync(path.join(dir, file), 'utf8')).nats[0];
  });
  return { url, child, dir };
}

async function stopNats(nats) {
  nats.child.kill('SIGTERM');
  await new Promise((resolve) => (nats.child.exitCode !== null ? resolve() : nats.child.once('exit', resolve)));
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
