import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { eventually, freePort, startProcess, type ProcessExit, type ProcessHandle } from '@backchannel/testing';
import { INTERNAL_TOKEN, http } from '../support/mesh.js';

/** A deployable as scripts/services.mjs declares it: the launcher's own list. */
interface LaunchedService {
  name: string;
  portEnv: string;
}

/** A process seen in /proc; `startTime` tells it apart from a later process with its pid. */
interface ProcessInfo {
  pid: number;
  ppid: number;
  state: string;
  startTime: string;
  cmdline: string;
}

/** The contract's bound (CONTRACT.md §8): `npm start` stops everything within 15 s. */
const STOP_WITHIN_MS = 15_000;
/** The port of a broker that may already run on the machine: the launcher must never use it. */
const SHARED_BROKER_PORT = 4222;

function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state, ppid, ... and starttime, field 22 of the whole line.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, ppid: Number(fields[1]), state: fields[0], startTime: fields[19], cmdline };
  } catch {
    return undefined;
  }
}

function allProcesses(): ProcessInfo[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((entry) => processInfo(Number(entry)))
    .filter((info): info is ProcessInfo => info !== undefined);
}

/** Still running: the same process (pid and start time), and not a zombie awaiting its reaper. */
function stillRunning(known: ProcessInfo): boolean {
  const now = processInfo(known.pid);
  return now !== undefined && now.startTime === known.startTime && now.state !== 'Z';
}

/** One `npm start` (or `node scripts/start.mjs`) in a process group of its own. */
interface Launch {
  handle: ProcessHandle;
  /** The launcher itself: `handle` when run directly, npm's child when run through npm. */
  launcher: ProcessInfo;
  services: ProcessInfo[];
  broker: ProcessInfo;
  urls: Map<string, string>;
  /** Set once the process has exited and its output is complete. */
  exit?: ProcessExit;
}

/**
 * `npm start` (scripts/start.mjs, CONTRACT.md §8) as a real process with NATS_URL unset: it
 * starts its own nats-server on a free loopback port, with its data in a temp dir
 * (BACKCHANNEL_DATA_DIR) shared by the runs below so a restart finds its streams again, and
 * the five services on free ports. Each run waits until every service answers /readyz 200,
 * then stops it one way the contract names and checks: exit 0 within 15 s, every service
 * stopped gracefully (exit code 0) before the broker, and no process left behind.
 */
describe('npm start (scripts/start.mjs)', () => {
  let dataDir: string;
  let services: LaunchedService[];
  let current: Launch | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'backchannel-start-'));
    const module = (await import(pathToFileURL(join(process.cwd(), 'scripts/services.mjs')).href)) as {
      SERVICES: LaunchedService[];
    };
    services = module.SERVICES;
  });

  afterEach(() => {
    // A failed run must not leave its group, or the broker outside it, behind.
    if (current && !current.exit) {
      const targets = [
        -current.handle.pid,
        ...allProcesses()
          .filter((p) => p.cmdline.includes(dataDir))
          .map((p) => p.pid),
      ];
      for (const target of targets) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    current = undefined;
  });

  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function launch(via: 'node' | 'npm'): Promise<Launch> {
    const env: Record<string, string | undefined> = {
      NATS_URL: undefined,
      BACKCHANNEL_DATA_DIR: dataDir,
      // The jest global setup has built dist/; others may be editing sources meanwhile.
      BACKCHANNEL_SKIP_BUILD: '1',
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      LOG_LEVEL: 'warn',
      SEQUENCER_PARTITIONS: '4',
      NO_COLOR: '1',
      npm_config_update_notifier: 'false',
      npm_config_loglevel: 'warn',
    };
    for (const service of services) env[service.portEnv] = String(await freePort());
    const [cmd, args]: [string, string[]] =
      via === 'npm' ? ['npm', ['start']] : [process.execPath, ['scripts/start.mjs']];
    const handle = await startProcess(cmd, args, { env, name: `${via} start`, detached: true });
    const run: Partial<Launch> & { handle: ProcessHandle } = { handle };
    current = run as Launch;
    void handle.exited.then((exit) => (run.exit = exit));

    const urls = new Map(services.map((s) => [s.name, `http://127.0.0.1:${env[s.portEnv]}`]));
    await eventually(
      async () => {
        for (const [name, url] of urls) {
          const answer = await fetch(`${url}/readyz`);
          await answer.arrayBuffer();
          if (answer.status !== 200) throw new Error(`${name} /readyz ${answer.status}`);
        }
      },
      { timeoutMs: 45_000, message: `every service ready under ${via} start` },
    );
    await handle.waitForLine(/Backchannel is ready/, 10_000);

    // Who runs now: the launcher, its five services, and the broker it started.
    const processes = allProcesses();
    const launcher =
      via === 'npm'
        ? processes.find((p) => p.ppid === handle.pid && p.cmdline.includes('scripts/start.mjs'))
        : processInfo(handle.pid);
    expect(launcher?.cmdline).toContain('scripts/start.mjs');
    const children = processes.filter((p) => p.ppid === launcher!.pid);
    const serviceProcesses = services.map((s) => {
      const found = children.filter((p) => p.cmdline.includes(`dist/apps/${s.name}/src/main.js`));
      expect(found).toHaveLength(1);
      return found[0];
    });
    const brokers = children.filter((p) => p.cmdline.includes('nats-server'));
    expect(brokers).toHaveLength(1);
    // Its own broker, its data in the directory it was given, on a port it picked.
    expect(brokers[0].cmdline).toContain(join(dataDir, 'nats'));
    const brokerLine = await handle.waitForLine(/nats-server \(pid \d+\) on nats:\/\//);
    const brokerUrl = new URL(/on (nats:\/\/\S+),/.exec(brokerLine)![1]);
    expect(brokerUrl.hostname).toBe('127.0.0.1');
    expect(Number(brokerUrl.port)).not.toBe(SHARED_BROKER_PORT);

    Object.assign(run, { launcher, services: serviceProcesses, broker: brokers[0], urls });
    return run as Launch;
  }

  /** Exit 0 within the contract's 15 s, services stopped gracefully before the broker, nothing left. */
  async function expectCleanStop(run: Launch): Promise<void> {
    const exit = await eventually(
      () => {
        if (!run.exit) throw new Error('still running');
        return run.exit;
      },
      { timeoutMs: STOP_WITHIN_MS, message: 'the launcher exited after the signal' },
    );
    const output = run.handle.output();
    expect({ exit, tail: exit.code === 0 ? [] : output.slice(-20) }).toEqual({
      exit: { code: 0, signal: null },
      tail: [],
    });

    // Each service ended on its own terms (exit code 0: drained, not killed by a signal),
    // all of them before the broker was stopped.
    const brokerStopped = output.findIndex((line) => /\[start\]\s+stopping nats-server/.test(line));
    expect(brokerStopped).toBeGreaterThan(0);
    for (const { name } of services) {
      const stopped = output.findIndex((line) => line.includes(`${name} stopped (`));
      expect(output[stopped]).toContain(`${name} stopped (exit code 0)`);
      expect(stopped).toBeLessThan(brokerStopped);
    }

    const left = [run.launcher, ...run.services, run.broker].filter(stillRunning);
    expect(left.map((p) => p.cmdline)).toEqual([]);
    const usingDataDir = allProcesses().filter((p) => p.cmdline.includes(dataDir) && p.state !== 'Z');
    expect(usingDataDir.map((p) => p.cmdline)).toEqual([]);
  }

  it('SIGTERM to the launcher alone: stops every service, then its own broker; exit 0 within 15 s, nothing left', async () => {
    const run = await launch('node');
    // Something to find again after a restart: the broker's data outlives the run.
    const opened = await http('POST', `${run.urls.get('token-authority')}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: 'kept-across-restarts', tenant_id: 'start-e2e' },
    });
    expect(opened.status).toBe(201);

    process.kill(run.launcher.pid, 'SIGTERM');
    await expectCleanStop(run);
  });

  it('SIGINT to the whole process group (Ctrl-C): the same, and the restart found its data again', async () => {
    const run = await launch('node');
    const again = await http('POST', `${run.urls.get('token-authority')}/internal/v1/conversations`, {
      internal: true,
      body: { conversation_id: 'kept-across-restarts', tenant_id: 'start-e2e' },
    });
    // 200, not 201: the conversation opened by the previous run is still there.
    expect(again.status).toBe(200);

    process.kill(-run.handle.pid, 'SIGINT');
    await expectCleanStop(run);
  });

  it('through npm, SIGINT to the group twice (npm forwards its own copy too): the same', async () => {
    const run = await launch('npm');
    process.kill(-run.handle.pid, 'SIGINT');
    await run.handle.waitForLine(/SIGINT received: stopping/);
    // The second Ctrl-C, while the services are still draining.
    process.kill(-run.handle.pid, 'SIGINT');
    await run.handle.waitForLine(/SIGINT again: already stopping/);
    await expectCleanStop(run);
  });
});
