/**
 * One chaos scenario end to end: a private broker (or a 3-node cluster), the mesh as real
 * processes, the workload, a fault schedule running alongside, then — faults over — a
 * wait until the pipeline is idle, and the checker over what reached the conversations.
 */
import { existsSync } from 'node:fs';
import { eventually, freePort, startNatsServer, type NatsServerHandle } from '@backchannel/testing';
import { testEnv } from '../support/mesh.js';
import { ServiceProcess, type ServiceName } from '../support/process-mesh.js';
import { checkRun, type CheckReport } from './checker.js';
import { FaultInjector, hold, restartService, type Broker } from './faults.js';
import {
  InjectionLog,
  assertPipelineIdle,
  describeConsumers,
  describeConversation,
  type InjectionSourceName,
} from './injections.js';
import { startNatsCluster, type NatsCluster } from './nats-cluster.js';
import { createRng, runWorkload, type WorkloadProgress, type WorkloadResult } from './workload.js';

/** `ci`: a fixed sequence of faults at points of progress; `all`: every fault, on a clock; `cluster`: R3 on 3 nodes, one killed. */
export type FaultSchedule = 'ci' | 'all' | 'cluster';

export interface ChaosScenario {
  name: string;
  conversations: number;
  itemsPerConversation: number;
  faults: FaultSchedule;
  /** How long to wait, faults over, for every accepted result to come through. */
  settleTimeoutMs: number;
  /** Pace of the results (per second), so the faults keep coming all through a long run. */
  callbacksPerSecond?: number;
  seed: number;
  /** `auto`: the transcript when the conversation injector is built and starts, else the releases. */
  injectedFrom: 'auto' | InjectionSourceName;
}

export interface ScenarioResult extends CheckReport {
  scenario: string;
  seed: number;
  source: InjectionSourceName;
  faults: string[];
  workload: Omit<WorkloadResult, 'registered' | 'accepted' | 'acceptedProgress'>;
  settleMs: number;
  /** Why the settle wait gave up, if it did (the figures then show what was missing). */
  settleProblem?: string;
  /** Where the pipeline was stuck, when it did not settle (consumers, sequencer states, service warnings). */
  diagnosis?: string[];
  totalMs: number;
}

const SEQUENCERS = 2;
const PARTITIONS = 8;
const INJECTOR_ENTRY = 'dist/apps/conversation-injector/src/main.js';

export async function runScenario(scenario: ChaosScenario, say: (line: string) => void): Promise<ScenarioResult> {
  const started = Date.now();
  const rng = createRng(scenario.seed ^ 0x5eed);
  const faults = new FaultInjector(rng);
  const infra = await startBrokers(scenario.faults === 'cluster');
  let services: ServiceProcess[] = [];
  try {
    const mesh = await startMesh(infra, scenario);
    services = mesh.services;
    say(
      `${scenario.name}: seed ${scenario.seed}, injections read from ${mesh.source}, ${services.length} service processes`,
    );

    let workloadDone = false;
    const progress = new ProgressSignal();
    const faultRun = runFaults(scenario.faults, { faults, infra, services, progress, done: () => workloadDone });
    const workload = await runWorkload(
      {
        prefix: `${scenario.name}-${scenario.seed}`,
        conversations: scenario.conversations,
        itemsPerConversation: scenario.itemsPerConversation,
        llmShare: 0.2,
        unorderedShare: 0.1,
        progressShare: 0.1,
        // Longer than any run: only an item whose callback was never accepted may time out.
        timeoutMs: 3_600_000,
        seed: scenario.seed,
      },
      {
        tokenAuthorityUrl: () => mesh.of('token-authority').url,
        registerConcurrency: 16,
        callbackConcurrency: 32,
        ...(scenario.callbacksPerSecond ? { callbacksPerSecond: scenario.callbacksPerSecond } : {}),
        requestTimeoutMs: 5_000,
        giveUpAfterMs: 300_000,
        dropShare: 0.02,
        replayShare: 0.05,
        onProgress: (state) => progress.update(state),
      },
    ).finally(() => {
      workloadDone = true;
      progress.finish();
    });
    await faultRun;
    say(
      `${scenario.name}: workload done in ${((Date.now() - started) / 1000).toFixed(0)} s, ${faults.log.length} faults`,
    );

    const settleStarted = Date.now();
    const log = await InjectionLog.open(infra.url, mesh.source);
    let settleProblem: string | undefined;
    try {
      await eventually(
        async () => {
          await log.catchUp();
          const { lost } = checkRun({ ...workload, delivered: log.delivered }).figures;
          if (lost > 0) throw new Error(`${lost} accepted results not injected yet`);
          await assertPipelineIdle(infra.url, mesh.source, PARTITIONS);
        },
        { timeoutMs: scenario.settleTimeoutMs, intervalMs: 1_000, message: 'pipeline settled' },
      ).catch((error: Error) => {
        settleProblem = error.message;
      });
      await log.catchUp();
      const report = checkRun({ ...workload, delivered: log.delivered });
      const diagnosis = settleProblem ? await diagnose(infra.url, workload, mesh) : undefined;
      const { registered: _registered, accepted: _accepted, acceptedProgress: _progress, ...stats } = workload;
      return {
        ...report,
        scenario: scenario.name,
        seed: scenario.seed,
        source: mesh.source,
        faults: faults.log,
        workload: stats,
        settleMs: Date.now() - settleStarted,
        ...(settleProblem ? { settleProblem } : {}),
        ...(diagnosis ? { diagnosis } : {}),
        totalMs: Date.now() - started,
      };
    } finally {
      await log.close();
    }
  } finally {
    await Promise.all(services.map((service) => service.terminate().catch(() => undefined)));
    await infra.cleanup();
  }
}

/** Where the missing results are stuck: releases vs transcript, consumers, the services' complaints. */
async function diagnose(url: string, workload: WorkloadResult, mesh: Mesh): Promise<string[]> {
  const lines = ['diagnosis:'];
  try {
    const releases = await InjectionLog.open(url, 'releases');
    await releases.catchUp();
    await releases.close();
    lines.push(
      `  judged on releases: ${JSON.stringify(checkRun({ ...workload, delivered: releases.delivered }).figures)}`,
    );
    lines.push(...(await describeConsumers(url, PARTITIONS)).map((line) => `  ${line}`));
    const report = checkRun({ ...workload, delivered: releases.delivered });
    const stuck = new Set(report.examples.lost.map((text) => /\((\S+) #/.exec(text)?.[1]).filter(Boolean));
    for (const conversationId of stuck) {
      lines.push(...(await describeConversation(url, conversationId!, PARTITIONS)).map((line) => `  ${line}`));
    }
  } catch (error) {
    lines.push(`  broker unreadable: ${(error as Error).message}`);
  }
  for (const service of mesh.services) {
    const complaints = service.output().filter((line) => /"level":"(warn|error|fatal)"/.test(line));
    lines.push(`  ${service.name}:${service.port} (${complaints.length} warnings/errors since its last start)`);
    lines.push(...complaints.slice(-8).map((line) => `    ${line.slice(0, 400)}`));
  }
  return lines;
}

/** Figures and fault log as lines, for the test output and docs/reliability.md. */
export function describeResult(result: ScenarioResult): string[] {
  const { figures, workload } = result;
  const lines = [
    `${result.scenario} (seed ${result.seed}, injections from ${result.source}): ${(result.totalMs / 1000).toFixed(0)} s in all, ` +
      `registration ${(workload.registerMs / 1000).toFixed(0)} s, callbacks ${(workload.callbacksMs / 1000).toFixed(0)} s, settle ${(result.settleMs / 1000).toFixed(0)} s`,
    `  figures ${JSON.stringify(figures)}`,
    `  provider: final statuses ${JSON.stringify(workload.finalStatuses)}, retries ${workload.retries}, replays ${workload.replays} (not 200: ${workload.replaysNot200})`,
    `  faults (${result.faults.length}): ${result.faults.join('; ')}`,
  ];
  if (result.settleProblem) lines.push(`  settle gave up: ${result.settleProblem}`);
  if (result.diagnosis) lines.push(...result.diagnosis);
  for (const [kind, examples] of Object.entries(result.examples)) {
    if (examples.length > 0) lines.push(`  ${kind}: ${examples.join(' | ')}`);
  }
  return lines;
}

interface Infra {
  url: string;
  handle: NatsServerHandle;
  /** The broker a fault hits: the single server, or one cluster node. */
  brokers: Broker[];
  cleanup(): Promise<void>;
}

async function startBrokers(cluster: boolean): Promise<Infra> {
  if (cluster) {
    const nats: NatsCluster = await startNatsCluster(3);
    return { url: nats.url, handle: nats.asHandle(), brokers: nats.nodes, cleanup: () => nats.cleanup() };
  }
  const nats = await startNatsServer();
  // CHAOS_BROKER_STOP=term turns the broker's kill -9 into a graceful stop, to tell the
  // broker's own crash recovery apart from the mesh's (docs/reliability.md).
  const stop = process.env.CHAOS_BROKER_STOP ?? 'kill';
  const graceful = stop === 'term';
  const broker: Broker = {
    label: 'broker',
    stopsWith: graceful ? 'SIGTERM' : 'kill -9',
    kill: () => (graceful ? nats.stop() : nats.kill()),
    restart: () => nats.restart(),
    pause: () => nats.pause(),
    resume: () => nats.resume(),
  };
  return { url: nats.url, handle: nats, brokers: [broker], cleanup: () => nats.cleanup() };
}

interface Mesh {
  services: ServiceProcess[];
  source: InjectionSourceName;
  of(name: ServiceName, index?: number): ServiceProcess;
}

/** The mesh as processes, started one by one (two cores: a parallel boot can miss the readiness deadline). */
async function startMesh(infra: Infra, scenario: ChaosScenario): Promise<Mesh> {
  const ingressPort = await freePort();
  const env = {
    ...testEnv(infra.handle, {
      INGRESS_RATE_LIMIT_PER_SOURCE: '1000000',
      SEQUENCER_PARTITIONS: String(PARTITIONS),
      STREAM_REPLICAS: scenario.faults === 'cluster' ? '3' : '1',
    }),
    LOG_LEVEL: 'warn',
    PUBLIC_BASE_URL: `http://127.0.0.1:${ingressPort}`,
  };
  const layout: [ServiceName, number][] = [
    ['token-authority', await freePort()],
    ['callback-ingress', ingressPort],
    ...(await Promise.all(
      Array.from({ length: SEQUENCERS }, async () => ['ordering-sequencer', await freePort()] as [ServiceName, number]),
    )),
  ];
  const services = layout.map(([name, port]) => new ServiceProcess(name, port, env));
  for (const service of services) await restartService(service, 3);

  let source: InjectionSourceName = 'releases';
  const wantsTranscript = scenario.injectedFrom === 'transcript' || scenario.injectedFrom === 'auto';
  if (wantsTranscript && existsSync(INJECTOR_ENTRY)) {
    const injector = new ServiceProcess('conversation-injector', await freePort(), env);
    try {
      await restartService(injector, 2);
      services.push(injector);
      source = 'transcript';
    } catch (error) {
      if (scenario.injectedFrom === 'transcript') throw error;
      injector.process.kill('SIGKILL');
    }
  } else if (scenario.injectedFrom === 'transcript') {
    throw new Error(`CHAOS_INJECTED_FROM=transcript but ${INJECTOR_ENTRY} is not built`);
  }
  return {
    services,
    source,
    of: (name, index = 0) => services.filter((service) => service.name === name)[index],
  };
}

interface FaultContext {
  faults: FaultInjector;
  infra: Infra;
  services: ServiceProcess[];
  progress: ProgressSignal;
  done: () => boolean;
}

function runFaults(schedule: FaultSchedule, context: FaultContext): Promise<void> {
  switch (schedule) {
    case 'ci':
      return ciFaults(context);
    case 'all':
      return allFaults(context);
    case 'cluster':
      return clusterFaults(context);
  }
}

/** Short CI run: broker kill -9 twice, SIGSTOP once, kill -9 of every service once, at points of progress. */
async function ciFaults({ faults, infra, services, progress }: FaultContext): Promise<void> {
  const broker = infra.brokers[0];
  const named = (name: ServiceName) => services.filter((service) => service.name === name);
  const steps: [number, () => Promise<void>][] = [
    [0.1, () => faults.crashService(named('token-authority')[0])],
    [0.25, () => faults.crashBroker(broker)],
    [0.4, () => faults.crashService(named('callback-ingress')[0])],
    [0.5, () => faults.pauseBroker(broker, [1_000, 3_000])],
    [0.6, () => faults.crashService(faults.pick(named('ordering-sequencer')))],
    [0.7, () => (named('conversation-injector')[0] ? faults.crashService(named('conversation-injector')[0]) : hold(0))],
    [0.8, () => faults.crashBroker(broker)],
  ];
  for (const [at, fault] of steps) {
    if (!(await progress.reached(at))) return;
    await fault();
  }
}

/**
 * Long run: broker kill -9 and restart every 10–15 s; in between, every 2–5 s one of:
 * broker SIGSTOP 1–5 s, kill -9 of a random service, or a sequencer SIGSTOPped 12 s (past
 * the lease TTL: its partitions move while it still believes it owns them, and it goes on
 * applying what it had in flight when it wakes up).
 */
async function allFaults({ faults, infra, services, done }: FaultContext): Promise<void> {
  const broker = infra.brokers[0];
  const sequencers = services.filter((service) => service.name === 'ordering-sequencer');
  let nextCrash = Date.now() + faults.between(10_000, 15_000);
  while (!done()) {
    if (Date.now() >= nextCrash) {
      await faults.crashBroker(broker);
      nextCrash = Date.now() + faults.between(10_000, 15_000);
      continue;
    }
    await hold(Math.min(faults.between(2_000, 5_000), Math.max(0, nextCrash - Date.now())));
    if (done() || Date.now() >= nextCrash) continue;
    const roll = faults.chance();
    if (roll < 0.25) await faults.pauseBroker(broker, [1_000, 5_000]);
    else if (roll < 0.85) await faults.crashService(faults.pick(services));
    else await faults.stallService(faults.pick(sequencers), 12_000);
  }
}

/** Cluster run: services killed now and then; one node kill -9 at 40 % and started again at 80 %. */
async function clusterFaults({ faults, infra, services, progress }: FaultContext): Promise<void> {
  const node = infra.brokers[1];
  const steps: [number, () => Promise<void>][] = [
    [0.2, () => faults.crashService(faults.pick(services))],
    [
      0.4,
      async () => {
        faults.note(`${node.label} kill -9 (stays down)`);
        await node.kill();
      },
    ],
    [0.55, () => faults.crashService(faults.pick(services))],
    [0.7, () => faults.crashService(faults.pick(services))],
    [
      0.8,
      async () => {
        faults.note(`${node.label} started again`);
        await node.restart();
      },
    ],
  ];
  for (const [at, fault] of steps) {
    if (!(await progress.reached(at))) return;
    await fault();
  }
}

/** Progress of the workload as a fraction of its operations (registrations + callbacks). */
class ProgressSignal {
  private fraction = 0;
  private finished = false;
  private waiters: { at: number; resolve: (reached: boolean) => void }[] = [];

  update(state: WorkloadProgress): void {
    this.fraction = (state.registered + state.callbacksSettled) / (2 * state.total);
    this.wake();
  }

  finish(): void {
    this.finished = true;
    this.wake();
  }

  /** Resolves true once progress reaches `at`, false if the workload ended first. */
  reached(at: number): Promise<boolean> {
    if (this.fraction >= at) return Promise.resolve(true);
    if (this.finished) return Promise.resolve(false);
    return new Promise((resolve) => this.waiters.push({ at, resolve }));
  }

  private wake(): void {
    this.waiters = this.waiters.filter((waiter) => {
      if (this.fraction >= waiter.at) waiter.resolve(true);
      else if (this.finished) waiter.resolve(false);
      else return true;
      return false;
    });
  }
}
