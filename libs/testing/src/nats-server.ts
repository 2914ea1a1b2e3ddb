import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { signalChild, track, trackDir, unrefChild, untrackDir, waitForExit } from './registry.js';

export interface NatsServerOptions {
  /** JetStream store directory. Default: `store` inside the server's fresh temp dir. */
  storeDir?: string;
}

export interface NatsServerHandle {
  /** `nats://127.0.0.1:<port>`; stays the same across restarts. */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** pid of the current server process (changes on restart). */
  readonly pid: number;
  /** SIGKILL (a crash: nothing is flushed or closed); resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait; SIGKILL if it is still there after 5 s. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and store (stopping it first if running). */
  restart(): Promise<void>;
  /** SIGSTOP: the broker hangs without closing its connections, like a stalled host. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** stop() and remove the temp dir (not a caller-supplied storeDir). Idempotent. */
  cleanup(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
// A restart binds the port the previous process had; Go sets SO_REUSEADDR, so TIME_WAIT is
// normally no obstacle, but a dying process can hold the listener a moment longer.
const RESTART_ATTEMPTS = 10;
const RESTART_BACKOFF_MS = 100;

/**
 * Starts a private JetStream-enabled nats-server on a free loopback port, with its own
 * temp dir and store. Tests never use the shared broker on 4222: a private one can be
 * killed, paused and restarted mid-test, and tests cannot see each other's streams.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  const dir = await mkdtemp(join(tmpdir(), 'backchannel-nats-'));
  trackDir(dir);
  const storeDir = opts.storeDir ?? join(dir, 'store');

  let current: Launched;
  try {
    // -p -1: the server picks a free port and reports it in the ports file.
    current = await launch(bin, dir, storeDir, -1);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw err;
  }
  const port = current.port;
  let cleanedUp = false;

  const stop = async (): Promise<void> => {
    const child = current.child;
    signalChild(child, 'SIGTERM');
    // A paused (SIGSTOPped) server would hold the SIGTERM until continued.
    signalChild(child, 'SIGCONT');
    if (await waitForExit(child, STOP_GRACE_MS)) return;
    signalChild(child, 'SIGKILL');
    await waitForExit(child, STOP_GRACE_MS);
  };

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return current.child.pid as number;
    },
    async kill() {
      signalChild(current.child, 'SIGKILL');
      if (!(await waitForExit(current.child, STOP_GRACE_MS))) {
        throw new Error(`nats-server (pid ${current.child.pid}) did not die on SIGKILL`);
      }
    },
    stop,
    async restart() {
      if (cleanedUp) throw new Error('restart() after cleanup()');
      await stop();
      for (let attempt = 1; ; attempt++) {
        try {
          current = await launch(bin, dir, storeDir, port);
          return;
        } catch (err) {
          const inUse = err instanceof EarlyExit && /address already in use/i.test(err.message);
          if (!inUse || attempt >= RESTART_ATTEMPTS) throw err;
          await new Promise((resolve) => setTimeout(resolve, RESTART_BACKOFF_MS * attempt));
        }
      }
    },
    pause() {
      signalChild(current.child, 'SIGSTOP');
    },
    resume() {
      signalChild(current.child, 'SIGCONT');
    },
    async cleanup() {
      cleanedUp = true;
      await stop();
      await rm(dir, { recursive: true, force: true });
      untrackDir(dir);
    },
  };
}

/** `$NATS_SERVER_BIN`, else `nats-server` on PATH, else Debian's /usr/sbin (often not on a user's PATH). */
export function natsServerBinary(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`NATS_SERVER_BIN=${fromEnv} is not an executable file`);
  }
  const candidates = (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, 'nats-server'));
  candidates.push('/usr/sbin/nats-server');
  const found = candidates.find(isExecutable);
  if (found) return found;
  throw new Error(
    'nats-server not found (looked at $NATS_SERVER_BIN, PATH and /usr/sbin): run scripts/ensure-nats-server.sh to install it',
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface Launched {
  child: ChildProcess;
  port: number;
}

/** The server exited before it was ready; the message carries its last output. */
class EarlyExit extends Error {}

async function launch(bin: string, dir: string, storeDir: string, port: number): Promise<Launched> {
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, '--ports_file_dir', dir];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });

  // Keep the last lines of output for error messages; reading the pipes also keeps the
  // server from blocking on a full pipe buffer.
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      output.push(...chunk.split('\n').filter(Boolean));
      output.splice(0, Math.max(0, output.length - 40));
    });
  }

  await new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}`, { cause: err })));
    child.once('spawn', resolve);
  });
  track(child);
  unrefChild(child);

  const portsFile = join(dir, `nats-server_${child.pid}.ports`);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    // Polled rather than handed to eventually(): an exit must end the wait at once.
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new EarlyExit(
          `nats-server exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready:\n${output.join('\n')}`,
        );
      }
      try {
        return { child, port: await readyPort(portsFile) };
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(
            `nats-server not ready within ${READY_TIMEOUT_MS} ms (${String(err)}):\n${output.join('\n')}`,
          );
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } catch (err) {
    signalChild(child, 'SIGKILL');
    await waitForExit(child, STOP_GRACE_MS);
    throw err;
  }
}

/** The port once the server has written its ports file and accepts TCP connections. */
async function readyPort(portsFile: string): Promise<number> {
  // Written once the listeners are up: {"nats":["nats://127.0.0.1:PORT"], ...}. A missing
  // or half-written file throws, and is simply read again.
  const ports = JSON.parse(await readFile(portsFile, 'utf8')) as { nats?: string[] };
  const url = ports.nats?.[0];
  if (!url) throw new Error(`no nats URL in ${portsFile}`);
  const port = Number(new URL(url).port);
  // Belt and braces: hand out the URL only once a client can actually connect.
  await tcpProbe(port);
  return port;
}

function tcpProbe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    // Loopback connects succeed or are refused at once; the timeout only guards a paused host.
    socket.setTimeout(1_000, () => {
      socket.destroy();
      reject(new Error(`TCP connect to port ${port} timed out`));
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
  });
}
