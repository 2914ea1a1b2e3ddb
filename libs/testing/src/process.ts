import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';

import { signalChild, track, unrefChild } from './registry.js';

export interface StartProcessOptions {
  /** Merged over the test process's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Names the process in error messages. Default: the command's base name. */
  name?: string;
  /**
   * Starts the process in a session and process group of its own (its pid is the group's
   * id), so a test can signal the whole group as a terminal's Ctrl-C does:
   * `process.kill(-handle.pid, 'SIGINT')`.
   */
  detached?: boolean;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessHandle {
  readonly name: string;
  readonly pid: number;
  /** Every complete line printed so far, stdout and stderr interleaved in arrival order. */
  output(): string[];
  /** Resolves with the first line (already printed or yet to come) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal (default SIGTERM); a no-op once the process has exited. */
  kill(signal?: NodeJS.Signals): void;
  /** Settles once the process has exited and its output has been read to the end. */
  readonly exited: Promise<ProcessExit>;
}

interface Waiter {
  pattern: RegExp;
  resolve: (line: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const TAIL_LINES = 30;

/**
 * Starts a child process whose output is captured line by line, for tests that run built
 * services as real processes (crash, restart and shutdown behaviour cannot be tested
 * in-process). Resolves once the process has been spawned; rejects if it cannot be (e.g. the
 * command does not exist). The process is killed when the test process exits, whatever
 * happens to the test.
 */
export function startProcess(cmd: string, args: string[], opts: StartProcessOptions = {}): Promise<ProcessHandle> {
  const name = opts.name ?? basename(cmd);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }

  const child = spawn(cmd, args, { cwd: opts.cwd, env, detached: opts.detached, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<Waiter>();
  let exit: ProcessExit | undefined;

  const tail = (): string => lines.slice(-TAIL_LINES).join('\n') || '(no output)';

  const onLine = (line: string): void => {
    lines.push(line);
    for (const waiter of waiters) {
      waiter.pattern.lastIndex = 0;
      if (waiter.pattern.test(line)) {
        waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(line);
      }
    }
  };
  const flushStdout = collectLines(child.stdout, onLine);
  const flushStderr = collectLines(child.stderr, onLine);

  const exited = new Promise<ProcessExit>((resolve) => {
    // 'close' rather than 'exit': it comes after both pipes have been read to the end, so
    // output() is complete once `exited` settles.
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      flushStdout();
      flushStderr();
      exit = { code, signal };
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(
          new Error(
            `${name} exited (code ${code}, signal ${signal}) before printing a line matching ${waiter.pattern}; last output:\n${tail()}`,
          ),
        );
      }
      waiters.clear();
      resolve(exit);
    });
  });

  const handle = (pid: number): ProcessHandle => ({
    name,
    pid,
    exited,
    output: () => [...lines],
    kill: (signal = 'SIGTERM') => signalChild(child, signal),
    waitForLine: (pattern, timeoutMs = 10_000) => {
      const seen = lines.find((line) => {
        pattern.lastIndex = 0;
        return pattern.test(line);
      });
      if (seen !== undefined) return Promise.resolve(seen);
      if (exit) {
        return Promise.reject(
          new Error(`${name} has exited without printing a line matching ${pattern}; last output:\n${tail()}`),
        );
      }
      return new Promise<string>((resolve, reject) => {
        const waiter: Waiter = {
          pattern,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(
              new Error(`${name} printed no line matching ${pattern} within ${timeoutMs} ms; last output:\n${tail()}`),
            );
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },
  });

  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start ${name} (${cmd}): ${err.message}`, { cause: err })));
    child.once('spawn', () => {
      track(child);
      unrefChild(child);
      resolve(handle(child.pid as number));
    });
  });
}

/**
 * Feeds `onLine` each complete line of `stream`; the returned function emits a trailing
 * partial line (output not ended by a newline) once the stream is done.
 */
function collectLines(stream: Readable | null, onLine: (line: string) => void): () => void {
  let partial = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split(/\r?\n/);
    partial = parts.pop() ?? '';
    for (const line of parts) onLine(line);
  });
  return () => {
    if (partial !== '') onLine(partial);
    partial = '';
  };
}
