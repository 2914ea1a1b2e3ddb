import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, freePort, type NatsServerHandle, type ProcessExit } from '@backchannel/testing';
import { startNatsServer, testEnv } from '../support/mesh.js';
import { ServiceProcess, type ServiceName } from '../support/process-mesh.js';

const SERVICES: ServiceName[] = [
  'token-authority',
  'callback-ingress',
  'ordering-sequencer',
  'conversation-injector',
  'tool-dispatcher',
];

/** One answer, body read to the end (a keep-alive connection is not left half-read). */
async function get(url: string): Promise<{ status: number; contentType: string; text: string }> {
  const answer = await fetch(url);
  return { status: answer.status, contentType: answer.headers.get('content-type') ?? '', text: await answer.text() };
}

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const SAMPLE = new RegExp(
  `^(${METRIC_NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*)?,?\\})? (?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|NaN|[-+]Inf)(?: -?\\d+)?$`,
);
const HELP = new RegExp(`^# HELP (${METRIC_NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`);

/**
 * Problems with an exposition in the Prometheus text format (version 0.0.4): every line
 * empty, a comment (HELP, TYPE or other) or a sample; one TYPE per family, before its
 * samples; every sample of a declared family (histograms and summaries with their
 * `_bucket`, `_sum`, `_count`).
 */
function exposition(text: string): { problems: string[]; samples: string[] } {
  const problems: string[] = [];
  const samples: string[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = TYPE.exec(line);
    if (type) {
      if (types.has(type[1])) problems.push(`second TYPE for ${type[1]}`);
      types.set(type[1], type[2]);
      continue;
    }
    // Empty lines are allowed between families; other comments too.
    if (line === '' || HELP.test(line) || (line.startsWith('#') && !/^# (HELP|TYPE) /.test(line))) continue;
    const sample = SAMPLE.exec(line);
    if (!sample) {
      problems.push(`not a HELP, TYPE or sample line: ${JSON.stringify(line)}`);
      continue;
    }
    samples.push(line);
    const name = sample[1];
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((candidate) => types.has(candidate));
    if (!family) problems.push(`sample of no declared family: ${line}`);
    else if (family !== name && !['histogram', 'summary'].includes(types.get(family)!)) {
      problems.push(`${name} under ${types.get(family)} ${family}`);
    }
  }
  if (types.size === 0) problems.push('no metric family at all');
  return { problems, samples };
}

/**
 * CONTRACT.md §7 and §8, for every service as the real process an operator runs (dist/):
 * `/healthz` 200 while alive, `/readyz` 200 once ready and 503 while shutting down,
 * `/metrics` in the Prometheus text format, and SIGTERM (even sent twice) ends in exit 0.
 */
describe('health, readiness, metrics and SIGTERM of every service (processes)', () => {
  let nats: NatsServerHandle;
  const services = new Map<ServiceName, ServiceProcess>();

  beforeAll(async () => {
    nats = await startNatsServer();
    const ingressPort = await freePort();
    const env = { ...testEnv(nats), LOG_LEVEL: 'warn', PUBLIC_BASE_URL: `http://127.0.0.1:${ingressPort}` };
    for (const name of SERVICES) {
      const port = name === 'callback-ingress' ? ingressPort : await freePort();
      services.set(name, new ServiceProcess(name, port, env));
    }
    // start() resolves once /readyz answers 200.
    await Promise.all([...services.values()].map((service) => service.start()));
  });

  afterAll(async () => {
    await Promise.all([...services.values()].map((service) => service.kill().catch(() => undefined)));
    await nats?.cleanup();
  });

  it.each(SERVICES)('%s: /healthz 200, /readyz 200 with every check true', async (name) => {
    const { url } = services.get(name)!;
    const health = await get(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ status: 'ok' });

    const ready = await get(`${url}/readyz`);
    expect(ready.status).toBe(200);
    const report = JSON.parse(ready.text) as { status: string; ready: boolean; checks: Record<string, boolean> };
    expect(report).toMatchObject({ status: 'ready', ready: true });
    expect(report.checks).toMatchObject({ started: true, not_stopping: true, broker_connected: true });
    expect(Object.entries(report.checks).filter(([, ok]) => !ok)).toEqual([]);
  });

  it.each(SERVICES)('%s: /metrics in the Prometheus text format, with its own families', async (name) => {
    const { url } = services.get(name)!;
    const metrics = await get(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const { problems, samples } = exposition(metrics.text);
    expect(problems).toEqual([]);
    expect(samples).toContain(`backchannel_nats_connected{service="${name}"} 1`);
    // prom-client's standard process metrics are there too, under their usual names.
    expect(samples.some((sample) => sample.startsWith('process_cpu_seconds_total'))).toBe(true);
  });

  it('the exposition check is live: it refuses what is not the text format', () => {
    expect(exposition('# TYPE a_total counter\na_total 1\n').problems).toEqual([]);
    expect(exposition('a_total 1\n').problems).toContain('sample of no declared family: a_total 1');
    expect(exposition('# TYPE a gauge\n# TYPE a gauge\na 1\n').problems).toEqual(['second TYPE for a']);
    expect(exposition('# TYPE a gauge\na{b=c} 1\n').problems).toHaveLength(1);
    expect(exposition('# TYPE a gauge\na one\n').problems).toHaveLength(1);
    expect(exposition('{"status":"ok"}').problems).toHaveLength(2);
  });

  it.each(SERVICES)(
    '%s: SIGTERM turns /readyz 503 while /healthz stays 200; a second SIGTERM changes nothing; exit 0',
    async (name) => {
      const service = services.get(name)!;
      let exit: ProcessExit | undefined;
      void service.process.exited.then((done) => (exit = done));
      service.process.kill('SIGTERM');

      // During its readiness delay the service still answers: not ready, yet alive.
      await eventually(async () => expect((await get(`${service.url}/readyz`)).status).toBe(503), {
        timeoutMs: 5_000,
        message: `${name} /readyz 503 after SIGTERM`,
      });
      const report = JSON.parse((await get(`${service.url}/readyz`)).text) as { checks: Record<string, boolean> };
      expect(report.checks.not_stopping).toBe(false);
      expect((await get(`${service.url}/healthz`)).status).toBe(200);

      // What npm start's process group may send on top: the same stop, not a second one.
      service.process.kill('SIGTERM');
      await eventually(() => expect(exit).toBeDefined(), { timeoutMs: 15_000, message: `${name} exited` });
      expect({ exit, tail: exit!.code === 0 ? [] : service.output().slice(-20) }).toEqual({
        exit: { code: 0, signal: null },
        tail: [],
      });
    },
  );
});
