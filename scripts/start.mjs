// `npm start`: builds if needed, starts a local JetStream broker unless NATS_URL is set, runs
// every service with prefixed output, and stops them all (the broker last) on SIGTERM or
// SIGINT. Plain Node, standard library only, so it works before anything else is set up.
//
// Signals (CONTRACT.md §8): a signal may come to this process alone, to the whole process
// group (Ctrl-C), and npm forwards its own copy on top: so two or three arrive at once, and a
// user may press Ctrl-C again while we stop. Shutdown therefore starts once and every later
// signal is only noted. The services are in our process group and may get the group's signal
// directly as well; they are required to treat a repeated SIGTERM as one. The broker is
// started in its own session (detached) so that a group signal cannot stop it before the
// services have drained their connections to it.
//
// Environment: BACKCHANNEL_SKIP_BUILD=1 skips the build check (e.g. while sources are
// mid-edit); NATS_SERVER_BIN picks the nats-server binary; BACKCHANNEL_DATA_DIR puts the
// local broker's store and run files somewhere other than .data/ (tests use a temp dir).
import { spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildReason } from './build-state.mjs';
import { SERVICES, entryOf } from './services.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Relative to the repository root, like the default.
const DATA_DIR = path.resolve(ROOT, process.env.BACKCHANNEL_DATA_DIR || '.data');
const STORE_DIR = path.join(DATA_DIR, 'nats');
const RUN_DIR = path.join(DATA_DIR, 'run');
// Who owns the local broker: lets the next run find a broker orphaned by a SIGKILLed launcher.
const STATE_FILE = path.join(RUN_DIR, 'start.json');
const BROKER_LOG = path.join(RUN_DIR, 'nats-server.log');

// A service finishes in-flight work for up to 10 s on SIGTERM (CONTRACT.md §8); 12 s leaves
// it room to drain NATS and exit. 12 + 2 for the broker keeps the whole stop under 15 s.
const SERVICE_GRACE_MS = 12_000;
const BROKER_GRACE_MS = 2_000;
const AFTER_KILL_MS = 400;
const BROKER_READY_TIMEOUT_MS = 30_000;
const POLL_MS = 25;
const READY_POLL_MS = 250;

// ---------------------------------------------------------------------------------------
// Output: every line carries the name of whoever printed it, names padded to one width.

const WIDTH = Math.max('start'.length, 'nats-server'.length, ...SERVICES.map((s) => s.name.length)) + 2;
const COLOURS = [36, 35, 33, 32, 34, 96, 95];
const useColour = process.stdout.isTTY && !process.env.NO_COLOR;

function prefixFor(name, index) {
  const label = `[${name}]`.padEnd(WIDTH);
  return useColour ? `\x1b[${COLOURS[index % COLOURS.length]}m${label}\x1b[0m` : label;
}

const LAUNCHER = prefixFor('start', COLOURS.length - 1);

function log(message) {
  process.stdout.write(`${LAUNCHER} ${message}\n`);
}

/** A path as the user would type it: relative to the repository root when inside it. */
function shown(file) {
  const relative = path.relative(ROOT, file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

function logError(message) {
  process.stderr.write(`${LAUNCHER} ${message}\n`);
}

// A closed terminal or pipe must not turn into an uncaught EPIPE/EIO in the middle of a stop.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

/** Copies `stream` to `out` a whole line at a time, each line prefixed. */
function pipeLines(stream, prefix, out) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    if (lines.length) out.write(lines.map((line) => `${prefix} ${line.replace(/\r$/, '')}\n`).join(''));
  });
  stream.on('end', () => {
    if (partial) out.write(`${prefix} ${partial}\n`);
  });
}

// ---------------------------------------------------------------------------------------
// Child processes.

/** @type {{name: string, port: number, child: import('node:child_process').ChildProcess}[]} */
const services = [];
/** @type {import('node:child_process').ChildProcess | undefined} */
let broker;
/** The build or install step running in the foreground, if any. */
let helper;
/** Set once shutdown has begun: the promise of its completion. */
let stopping;
let wroteStateFile = false;

const isRunning = (child) => child.exitCode === null && child.signalCode === null;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function signal(child, sig) {
  if (!child || !isRunning(child)) return;
  try {
    child.kill(sig);
  } catch {
    // Exited in between.
  }
}

/** Resolves true when `child` has exited, false after `ms`. */
function exited(child, ms) {
  if (!isRunning(child)) return Promise.resolve(true);
  const wait = Math.max(0, ms);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', done);
      resolve(false);
    }, wait);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', done);
  });
}

function describeExit(code, sig) {
  return sig ? `signal ${sig}` : `exit code ${code}`;
}

/** Runs a foreground step (build, install) with inherited output. */
function runHelper(cmd, args) {
  return new Promise((resolve, reject) => {
    helper = spawn(cmd, args, { cwd: ROOT, stdio: 'inherit' });
    helper.once('error', reject);
    helper.once('exit', (code, sig) => {
      helper = undefined;
      resolve({ code, signal: sig });
    });
  });
}

// ---------------------------------------------------------------------------------------
// Stopping.

// SIGHUP too: a closed terminal hangs up our group, and would otherwise orphan the broker.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => {
    if (stopping) {
      log(`${sig} again: already stopping`);
      return;
    }
    log(`${sig} received: stopping`);
    void shutdown(0);
  });
}

process.on('uncaughtException', (err) => {
  logError(`internal error: ${err.stack ?? err}`);
  void shutdown(1);
});

// Last resort (an exit we did not plan): never leave the detached broker or a service behind.
process.on('exit', () => {
  for (const { child } of services) signal(child, 'SIGKILL');
  signal(broker, 'SIGKILL');
});

/** Stops the services, then the broker, then exits with `code`. Runs once. */
function shutdown(code) {
  stopping ??= (async () => {
    if (helper) {
      signal(helper, 'SIGTERM');
      if (!(await exited(helper, SERVICE_GRACE_MS))) signal(helper, 'SIGKILL');
    }

    const running = services.filter(({ child }) => isRunning(child));
    if (running.length) {
      log(`stopping ${running.map((s) => s.name).join(', ')}`);
      const deadline = Date.now() + SERVICE_GRACE_MS;
      for (const { child } of running) signal(child, 'SIGTERM');
      await Promise.all(
        running.map(async ({ name, child }) => {
          if (await exited(child, deadline - Date.now())) return;
          log(`${name} still running after ${SERVICE_GRACE_MS / 1000} s: SIGKILL`);
          signal(child, 'SIGKILL');
          await exited(child, AFTER_KILL_MS);
        }),
      );
    }

    if (broker && isRunning(broker)) {
      log('stopping nats-server');
      signal(broker, 'SIGTERM');
      if (!(await exited(broker, BROKER_GRACE_MS))) {
        log(`nats-server still running after ${BROKER_GRACE_MS / 1000} s: SIGKILL`);
        signal(broker, 'SIGKILL');
        await exited(broker, AFTER_KILL_MS);
      }
    }
    if (wroteStateFile) rmSync(STATE_FILE, { force: true });

    log(code === 0 ? 'stopped' : `stopped (exit code ${code})`);
    process.exit(code);
  })();
  return stopping;
}

// ---------------------------------------------------------------------------------------
// Build.

async function buildIfNeeded() {
  if (process.env.BACKCHANNEL_SKIP_BUILD === '1') {
    log('BACKCHANNEL_SKIP_BUILD=1: using dist/ as it is');
    return;
  }
  const reason = buildReason(ROOT);
  if (!reason) return;
  log(`building (${reason}): nest build --all`);
  const nest = path.join(ROOT, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js');
  if (!existsSync(nest)) throw new Error('node_modules/@nestjs/cli is missing: run `npm install` first');
  const { code, signal: sig } = await runHelper(process.execPath, [nest, 'build', '--all']);
  if (stopping) return;
  if (code !== 0) throw new Error(`the build failed (${describeExit(code, sig)}): see the errors above`);
}

// ---------------------------------------------------------------------------------------
// Broker.

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** $NATS_SERVER_BIN, else nats-server on PATH, else Debian's /usr/sbin (often not on PATH). */
function findNatsServer() {
  const chosen = process.env.NATS_SERVER_BIN;
  if (chosen) return isExecutable(chosen) ? chosen : undefined;
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  return [...dirs.map((dir) => path.join(dir, 'nats-server')), '/usr/sbin/nats-server'].find(isExecutable);
}

/** Whether `pid` is a live process whose command line contains `needle` (Linux /proc). */
function processMatches(pid, needle) {
  try {
    return Number.isInteger(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

/**
 * A launcher killed with SIGKILL cannot stop its detached broker. The next run finds it in
 * the state file and stops it (it holds the store), unless that launcher is still running.
 */
async function clearPreviousRun() {
  let previous;
  try {
    previous = JSON.parse(readFileSync(STATE_FILE, 'utf8'));
  } catch {
    previous = undefined;
  }
  if (previous) {
    const { launcherPid, brokerPid } = previous;
    let launcherCwd;
    try {
      launcherCwd = readlinkSync(`/proc/${launcherPid}/cwd`);
    } catch {
      launcherCwd = undefined;
    }
    if (launcherPid !== process.pid && launcherCwd === ROOT && processMatches(launcherPid, 'start.mjs')) {
      throw new Error(`another \`npm start\` (pid ${launcherPid}) is running on ${shown(DATA_DIR)}: stop it first`);
    }
    if (processMatches(brokerPid, STORE_DIR)) {
      log(`stopping nats-server pid ${brokerPid}, left behind by an earlier run`);
      const kill = (sig) => {
        try {
          process.kill(brokerPid, sig);
        } catch {
          // Already gone.
        }
      };
      kill('SIGTERM');
      const killAt = Date.now() + BROKER_GRACE_MS;
      while (processMatches(brokerPid, STORE_DIR)) {
        if (Date.now() > killAt) kill('SIGKILL');
        await sleep(POLL_MS);
      }
    }
  }
  // Ports files are named after the pid, so stale ones would not confuse us; tidy them anyway.
  for (const name of readdirSync(RUN_DIR)) {
    if (/^nats-server_\d+\.ports$/.test(name)) rmSync(path.join(RUN_DIR, name), { force: true });
  }
}

function tcpProbe(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function brokerLogTail() {
  try {
    return readFileSync(BROKER_LOG, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts the local broker and resolves with its URL (undefined if stopped meanwhile). */
async function startBroker() {
  let bin = findNatsServer();
  if (!bin) {
    log('nats-server not found: running scripts/ensure-nats-server.sh');
    await runHelper('bash', [path.join(ROOT, 'scripts', 'ensure-nats-server.sh')]);
    if (stopping) return undefined;
    bin = findNatsServer();
    if (!bin) throw new Error('nats-server is still missing (see above); or set NATS_URL to a broker of your own');
  }
  mkdirSync(STORE_DIR, { recursive: true });
  mkdirSync(RUN_DIR, { recursive: true });
  await clearPreviousRun();
  if (stopping) return undefined;

  // -p -1: a free port, so we never collide with another broker on this machine (4222...).
  // Its output goes to a file rather than through us: it is noisy, and a pipe to us would
  // tie its fate to ours. detached: its own session and process group, out of reach of
  // signals sent to ours, so it is stopped last, by us.
  const logFd = openSync(BROKER_LOG, 'a');
  const args = ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', STORE_DIR, '--ports_file_dir', RUN_DIR];
  broker = spawn(bin, args, { cwd: ROOT, detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  await new Promise((resolve, reject) => {
    broker.once('spawn', resolve);
    broker.once('error', reject);
  });
  writeFileSync(STATE_FILE, JSON.stringify({ launcherPid: process.pid, brokerPid: broker.pid }));
  wroteStateFile = true;
  broker.once('exit', (code, sig) => {
    if (stopping) return;
    logError(`nats-server exited on its own (${describeExit(code, sig)}); its log ends:\n${brokerLogTail()}`);
    void shutdown(1);
  });

  const portsFile = path.join(RUN_DIR, `nats-server_${broker.pid}.ports`);
  for (const deadline = Date.now() + BROKER_READY_TIMEOUT_MS; ; await sleep(POLL_MS)) {
    if (stopping || !isRunning(broker)) return undefined;
    if (Date.now() > deadline) {
      throw new Error(
        `nats-server not ready after ${BROKER_READY_TIMEOUT_MS / 1000} s; its log ends:\n${brokerLogTail()}`,
      );
    }
    let url;
    try {
      // {"nats":["nats://127.0.0.1:PORT"]}, written once it listens; half-written: read again.
      url = JSON.parse(readFileSync(portsFile, 'utf8')).nats?.[0];
    } catch {
      continue;
    }
    if (url && (await tcpProbe(Number(new URL(url).port)))) {
      log(`nats-server (pid ${broker.pid}) on ${url}, JetStream store ${shown(STORE_DIR)}, log ${shown(BROKER_LOG)}`);
      return url;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Services.

function portOf(service) {
  return Number(process.env[service.portEnv] || service.defaultPort);
}

function startServices(natsUrl) {
  SERVICES.forEach((service, index) => {
    const child = spawn(process.execPath, [entryOf(service.name)], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: natsUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const prefix = prefixFor(service.name, index);
    pipeLines(child.stdout, prefix, process.stdout);
    pipeLines(child.stderr, prefix, process.stderr);
    child.once('error', (err) => logError(`cannot start ${service.name}: ${err.message}`));
    child.once('exit', (code, sig) => {
      if (stopping) {
        log(`${service.name} stopped (${describeExit(code, sig)})`);
        return;
      }
      logError(`${service.name} exited on its own (${describeExit(code, sig)}): stopping the others`);
      void shutdown(1);
    });
    services.push({ name: service.name, port: portOf(service), child });
  });
}

async function isReady(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function waitUntilReady(natsUrl, ownBroker) {
  const pending = new Set(services);
  const started = Date.now();
  let reminded = false;
  while (pending.size) {
    await Promise.all(
      [...pending].map(async (service) => {
        if (await isReady(service.port)) pending.delete(service);
      }),
    );
    if (stopping) return;
    if (!pending.size) break;
    if (!reminded && Date.now() - started > 30_000) {
      reminded = true;
      log(`still waiting for /readyz of ${[...pending].map((s) => s.name).join(', ')}`);
    }
    await sleep(READY_POLL_MS);
  }

  const broker = ownBroker ? `${natsUrl} (local, data in ${shown(STORE_DIR)})` : natsUrl;
  const rows = services.map(({ name, port }) => `    ${name.padEnd(WIDTH)} http://127.0.0.1:${port}`);
  log(
    [
      `Backchannel is ready (${((Date.now() - started) / 1000).toFixed(1)} s); NATS ${broker}`,
      ...rows,
      `    every service serves /readyz, /healthz and /metrics; Ctrl-C stops them all`,
    ].join('\n'),
  );
}

// ---------------------------------------------------------------------------------------

async function main() {
  await buildIfNeeded();
  if (stopping) return;

  let natsUrl = process.env.NATS_URL?.trim();
  const ownBroker = !natsUrl;
  if (ownBroker) {
    natsUrl = await startBroker();
  } else {
    log(`using the broker at NATS_URL=${natsUrl}`);
  }
  if (stopping || !natsUrl) return;

  startServices(natsUrl);
  await waitUntilReady(natsUrl, ownBroker);
}

main().catch((err) => {
  if (stopping) return;
  logError(err instanceof Error ? err.message : String(err));
  void shutdown(1);
});
