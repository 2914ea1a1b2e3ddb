/**
 * A 3-node NATS cluster with JetStream on loopback, for the long chaos run: each node has
 * its own client port, route port and store, so one can be killed -9 and started again
 * while the others keep R3 streams going.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import {
  eventually,
  freePort,
  natsServerBinary,
  startProcess,
  type NatsServerHandle,
  type ProcessHandle,
} from '@backchannel/testing';
import type { Broker } from './faults.js';

export interface ClusterNode extends Broker {
  readonly url: string;
}

export interface NatsCluster {
  /** Every node's URL, comma-separated, as `NATS_URL` takes it. */
  readonly url: string;
  readonly nodes: ClusterNode[];
  /** What the test helpers want of a broker (they only read `url`). */
  asHandle(): NatsServerHandle;
  cleanup(): Promise<void>;
}

export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'backchannel-cluster-'));
  const ports = await Promise.all(
    Array.from({ length: size }, async () => ({ client: await freePort(), route: await freePort() })),
  );
  const routes = ports.map((port) => `nats://127.0.0.1:${port.route}`).join(',');
  const nodes = ports.map(
    (port, i) =>
      new Node(`n${i + 1}`, port.client, [
        '-a',
        '127.0.0.1',
        '-p',
        String(port.client),
        '-n',
        `chaos-n${i + 1}`,
        '-js',
        '-sd',
        join(dir, `n${i + 1}`),
        '--cluster_name',
        'chaos',
        '--cluster',
        `nats://127.0.0.1:${port.route}`,
        '--routes',
        routes,
      ]),
  );
  await Promise.all(nodes.map((node) => node.start()));
  const url = nodes.map((node) => node.url).join(',');
  await waitForJetStream(url);
  return {
    url,
    nodes,
    asHandle: () => ({ url }) as NatsServerHandle,
    async cleanup() {
      await Promise.all(nodes.map((node) => node.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

class Node implements ClusterNode {
  readonly url: string;
  private handle?: ProcessHandle;

  constructor(
    readonly label: string,
    port: number,
    private readonly args: string[],
  ) {
    this.url = `nats://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    this.handle = await startProcess(natsServerBinary(), this.args, { name: `nats-${this.label}` });
    await eventually(
      async () => {
        const nc = await connect({ servers: this.url, timeout: 500, reconnect: false });
        await nc.close();
      },
      { timeoutMs: 15_000, message: `cluster node ${this.label} listening` },
    );
  }

  async kill(): Promise<void> {
    this.handle?.kill('SIGKILL');
    await this.handle?.exited;
  }

  restart(): Promise<void> {
    return this.start();
  }

  pause(): void {
    this.handle?.kill('SIGSTOP');
  }

  resume(): void {
    this.handle?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.handle?.kill('SIGCONT');
    this.handle?.kill('SIGTERM');
    await this.handle?.exited;
  }
}

/** JetStream answers once the cluster has elected its meta leader. */
async function waitForJetStream(url: string): Promise<void> {
  await eventually(
    async () => {
      const nc = await connect({ servers: url.split(','), timeout: 1_000 });
      try {
        const reply = await nc.request('$JS.API.INFO', '', { timeout: 1_000 });
        const info = reply.json<{ error?: unknown }>();
        if (info.error) throw new Error(`JetStream not ready: ${JSON.stringify(info.error)}`);
      } finally {
        await nc.close();
      }
    },
    { timeoutMs: 30_000, intervalMs: 200, message: 'cluster JetStream ready' },
  );
}
