// What `npm run bench` and `npm run soak` share: the build check, a private broker, the
// services as processes of their own (dist/), and small helpers. Every process started here
// is killed when the script exits, however it exits.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildReason } from '../scripts/build-state.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const now = () => performance.timeOrigin + performance.now();
export const round = (value, digits = 0) =>
  Number.isFinite(value) ? Math.round(value * 10 ** digits) / 10 ** digits : null;

const children = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** A child process to kill when this script exits. */
export function track(child) {
  children.push(child);
  return child;
}

/** Builds dist/ when it is missing or older than the sources. */
export function ensureBuilt(log) {
  const reason = buildReason(ROOT);
  if (!reason) return;
  log(`building (${reason})`);
  const nest = path.join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js');
  const built = spawnSync(process.execPath, [nest, 'build', '--all'], { stdio: 'inherit', cwd: ROOT });
  if (built.status !== 0) throw new Error('build failed');
}

/** A private nats-server with JetStream on a free port and a temporary store. */
export async function startNats(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const bin = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find(existsSync) ?? 'nats-server';
  const child = track(
    spawn(bin, ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', path.join(dir, 'store'), '--ports_file_dir', dir], {
      stdio: 'ignore',
    }),
  );
  const url = await poll(() => {
    const file = readdirSync(dir).find((name) => name.endsWith('.ports'));
    return file && JSON.parse(readFileSync(path.join(dir, file), 'utf8')).nats[0];
  });
  return { url, child, dir };
}

export async function stopNats(nats) {
  nats.child.kill('SIGTERM');
  await new Promise((resolve) => nats.child.once('exit', resolve));
  rmSync(nats.dir, { recursive: true, force: true });
}

/**
 * Starts services from dist/ (`specs`: `{ name, env, nodeArgs?, root? }`, each with its port
 * in `env` already; `root`: another checkout whose build to run) and waits until every one
 * answers `/readyz` with 200.
 */
export async function startServices(specs) {
  const services = specs.map(({ name, env, nodeArgs = [], port, root = ROOT }) => {
    const child = track(
      spawn(process.execPath, [...nodeArgs, path.join(root, `dist/apps/${name}/src/main.js`)], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    );
    return { name, port, child, origin: `http://127.0.0.1:${port}` };
  });
  for (const service of services) {
    await poll(async () => (await fetch(`${service.origin}/readyz`).catch(() => undefined))?.status === 200, 60_000);
  }
  return services;
}

/** SIGTERM to every service, then waits for them all to exit. */
export async function stopServices(services) {
  for (const service of services) service.child.kill('SIGTERM');
  await Promise.all(services.map((service) => new Promise((resolve) => service.child.once('exit', resolve))));
}

/** A `bc.v1.*` request, retried a few times on an error answer. */
export async function request(nc, subject, body) {
  for (let attempt = 0; ; attempt++) {
    const reply = (await nc.request(subject, JSON.stringify(body), { timeout: 10_000 })).json();
    if (!reply.errors) return reply;
    if (attempt > 5) throw new Error(`${subject}: ${JSON.stringify(reply.errors)}`);
  }
}

/** `work` over `items`, `concurrency` at a time; results in the items' order. */
export async function pool(items, concurrency, work) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]);
      }
    }),
  );
  return results;
}

/** Probes every `intervalMs` until it returns something truthy (returned), or throws after the timeout. */
export async function poll(probe, timeoutMs = 10_000, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Clock ticks per second of /proc's CPU times (USER_HZ). */
export const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** RSS (kB) and user + system CPU ticks of a process, from /proc. */
export function procStats(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rssKb, ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return { rssKb: NaN, ticks: NaN };
  }
}

export function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
