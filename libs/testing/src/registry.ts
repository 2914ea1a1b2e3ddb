import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

// Every child process a test helper starts (and every temp dir it makes) is registered
// here until it is done with, so that a test that fails or forgets its cleanup never leaves
// a broker or a service running after the test process ends. Internal to this library.
//
// Why a watchdog process rather than process.on('exit'): under jest, `process` inside a
// test is a copy with its own event emitter, so an 'exit' listener there never fires; and
// no listener survives the test runner being SIGKILLed. The watchdog is a tiny detached node
// process that reads registrations on its stdin. When that pipe reaches end-of-file (the
// test process has gone, however it went) it SIGKILLs what is still registered, removes the
// temp dirs and exits. Once nothing is registered we close the pipe ourselves, so no idle
// watchdog outlives the test file that needed it.
const WATCHDOG = `
const { rmSync } = require('node:fs');
const pids = new Set(), dirs = new Set();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const set = line[1] === 'p' ? pids : dirs;
    const value = line.slice(3);
    if (line[0] === '+') set.add(value); else set.delete(value);
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch {} }
  // Let the kernel finish tearing the processes down before removing their files.
  setTimeout(() => {
    for (const dir of dirs) { try { rmSync(dir, { recursive: true, force: true }); } catch {} }
    process.exit(0);
  }, pids.size ? 200 : 0);
});
`;

let watchdog: Writable | undefined;
let registered = 0;

function send(line: string): void {
  if (!watchdog) {
    // Detached: its own process group, so a Ctrl-C aimed at the test runner does not end
    // it before the runner is gone.
    const child = spawn(process.execPath, ['-e', WATCHDOG], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    child.unref();
    const stdin = child.stdin as Writable & { unref?: () => void };
    // A watchdog that died early must not crash the tests with EPIPE.
    stdin.on('error', () => undefined);
    stdin.unref?.();
    watchdog = stdin;
  }
  watchdog.write(`${line}\n`);
}

function add(kind: 'p' | 'd', value: string): void {
  registered += 1;
  send(`+${kind} ${value}`);
}

function remove(kind: 'p' | 'd', value: string): void {
  if (!watchdog) return;
  send(`-${kind} ${value}`);
  registered -= 1;
  if (registered === 0) {
    watchdog.end();
    watchdog = undefined;
  }
}

/** Registers a running child until it exits. */
export function track(child: ChildProcess): void {
  const pid = String(child.pid);
  add('p', pid);
  child.once('exit', () => remove('p', pid));
}

/** Registers a temp dir to be removed if the test process ends before untrackDir(). */
export function trackDir(dir: string): void {
  add('d', dir);
}

export function untrackDir(dir: string): void {
  remove('d', dir);
}

/**
 * Resolves true once `child` has exited (at once if it already has), false after
 * `timeoutMs`. While waiting, the timer keeps the event loop alive: the children are
 * unref'd, and without it a plain script awaiting an exit could end mid-await.
 */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Sends `signal`, ignoring a child that has already exited. */
export function signalChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(signal);
  } catch {
    // Exited between the check and the kill.
  }
}

/**
 * A child (and its pipes) must not keep the test runner alive: if a test leaks one, the
 * runner exits anyway and the watchdog kills the child.
 */
export function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
}
