import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:net';
import { eventually, freePort, startProcess, type ProcessExit } from '@backchannel/testing';
import type { ServiceName } from '../support/process-mesh.js';

const SERVICES: ServiceName[] = [
  'token-authority',
  'callback-ingress',
  'ordering-sequencer',
  'conversation-injector',
  'tool-dispatcher',
];

/** A frame of a stack trace: a refusal is a message for an operator, not a crash. */
const STACK_FRAME = /^\s+at /m;

interface Refusal {
  exit: ProcessExit;
  output: string;
}

/** Runs a built service (dist/, built by the jest global setup) with `env` until it exits. */
async function runUntilExit(service: ServiceName, env: Record<string, string | undefined>): Promise<Refusal> {
  const child = await startProcess(process.execPath, [`dist/apps/${service}/src/main.js`], {
    name: service,
    env: { LOG_LEVEL: undefined, ...env },
  });
  let exit: ProcessExit | undefined;
  void child.exited.then((done) => (exit = done));
  // A service that did not refuse would run on: fail rather than wait for jest's timeout.
  await eventually(
    () => {
      if (!exit) throw new Error(`${service} is still running; output so far:\n${child.output().join('\n')}`);
    },
    { timeoutMs: 20_000, message: `${service} refused to start` },
  ).finally(() => child.kill('SIGKILL'));
  return { exit: exit!, output: child.output().join('\n') };
}

/**
 * CONTRACT.md §8: each service reads its configuration from the environment and refuses to
 * start, with a clear message, on an invalid value; a service started on its own needs
 * NATS_URL and never falls back to whatever broker listens on the default port. Every
 * service is run as a real process from dist/ and must exit 1 naming the variable, its value
 * (never a secret's) and the rule, without a stack trace and without touching a broker.
 */
describe('configuration refusal (built services as processes)', () => {
  /** NATS_URL for the invalid-value cases: nothing listens there, so nothing is ever touched. */
  let unusedBroker: string;

  beforeAll(async () => {
    unusedBroker = `nats://127.0.0.1:${await freePort()}`;
  });

  it.each(SERVICES)('%s started alone without NATS_URL exits 1 and says NATS_URL is required', async (service) => {
    const { exit, output } = await runUntilExit(service, { NATS_URL: undefined });
    expect(exit).toEqual({ code: 1, signal: null });
    expect(output).toContain(`${service}: cannot start: invalid configuration`);
    expect(output).toMatch(/NATS_URL.*is required/);
    expect(output).not.toMatch(STACK_FRAME);
  });

  const invalid: { service: ServiceName; variable: string; value: string; rule: RegExp }[] = [
    { service: 'token-authority', variable: 'REPLAY_TTL_MS', value: '5', rule: /not be less than 1000/ },
    { service: 'ordering-sequencer', variable: 'SEQUENCER_PARTITIONS', value: '0', rule: /not be less than 1/ },
    { service: 'conversation-injector', variable: 'LOG_LEVEL', value: 'loud', rule: /debug, info, warn, error/ },
    { service: 'tool-dispatcher', variable: 'DISPATCHER_ALLOW_PRIVATE_NETWORKS', value: 'maybe', rule: /boolean/ },
    {
      service: 'callback-ingress',
      variable: 'CALLBACK_MAX_BODY_BYTES',
      value: '1000000',
      rule: /not be greater than 524288/,
    },
    { service: 'callback-ingress', variable: 'INGRESS_PORT', value: 'http', rule: /integer/ },
    { service: 'token-authority', variable: 'STREAM_REPLICAS', value: '2', rule: /1, 3, 5/ },
    { service: 'tool-dispatcher', variable: 'PUBLIC_BASE_URL', value: 'ftp://example', rule: /URL/ },
  ];

  it.each(invalid)('$service with $variable=$value exits 1 naming the variable and the rule', async (example) => {
    const { service, variable, value, rule } = example;
    const { exit, output } = await runUntilExit(service, { NATS_URL: unusedBroker, [variable]: value });
    expect(exit).toEqual({ code: 1, signal: null });
    expect(output).toContain(`${service}: cannot start: invalid configuration`);
    const line = output.split('\n').find((l) => l.startsWith(`  - ${variable}=`));
    expect(line).toBeDefined();
    expect(line).toContain(value);
    expect(line).toMatch(rule);
    expect(output).not.toMatch(STACK_FRAME);
  });

  it('names every invalid variable at once, and a secret by name only', async () => {
    const secret = 'short-secret';
    const { exit, output } = await runUntilExit('token-authority', {
      NATS_URL: unusedBroker,
      INTERNAL_API_TOKEN: secret,
      SEQUENCER_PARTITIONS: '0',
      LOG_LEVEL: 'loud',
    });
    expect(exit).toEqual({ code: 1, signal: null });
    expect(output).toMatch(/INTERNAL_API_TOKEN=\(hidden\): .*at least 16 characters/);
    expect(output).toContain('SEQUENCER_PARTITIONS=0');
    expect(output).toContain('LOG_LEVEL="loud"');
    expect(output).not.toContain(secret);
  });
});

/**
 * CONTRACT.md §8: SIGTERM stops a service and it exits 0, also while it is still starting.
 * The "broker" here accepts connections and never answers, so the service waits in its
 * first connect (its signal handlers are installed before it connects); the test sends
 * SIGTERM as soon as the connection arrives.
 */
describe('SIGTERM while a service is still starting', () => {
  let silentBroker: Server;
  const connected = new Set<string>();

  beforeAll(async () => {
    silentBroker = createServer((socket) => {
      connected.add(String(socket.remotePort));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silentBroker.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => silentBroker.close(resolve));
  });

  it.each(SERVICES)('%s waiting for its broker exits 0 on SIGTERM', async (service) => {
    const address = silentBroker.address();
    if (address === null || typeof address === 'string') throw new Error('no listener address');
    const before = connected.size;
    const child = await startProcess(process.execPath, [`dist/apps/${service}/src/main.js`], {
      name: service,
      env: { NATS_URL: `nats://127.0.0.1:${address.port}`, LOG_LEVEL: 'warn' },
    });
    try {
      await eventually(() => expect(connected.size).toBeGreaterThan(before), {
        timeoutMs: 20_000,
        message: `${service} connecting to the broker`,
      });
      child.kill('SIGTERM');
      let exit: ProcessExit | undefined;
      void child.exited.then((done) => (exit = done));
      await eventually(() => expect(exit).toBeDefined(), { timeoutMs: 10_000, message: `${service} exited` });
      expect(exit).toEqual({ code: 0, signal: null });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
