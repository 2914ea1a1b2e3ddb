import { eventually, freePort, startProcess, type NatsServerHandle, type ProcessHandle } from '@backchannel/testing';
import { testEnv } from './mesh.js';

export type ServiceName =
  'token-authority' | 'callback-ingress' | 'ordering-sequencer' | 'conversation-injector' | 'tool-dispatcher';

const PORT_ENV: Record<ServiceName, string> = {
  'callback-ingress': 'INGRESS_PORT',
  'token-authority': 'TOKEN_AUTHORITY_PORT',
  'ordering-sequencer': 'SEQUENCER_PORT',
  'conversation-injector': 'INJECTOR_PORT',
  'tool-dispatcher': 'DISPATCHER_PORT',
};

/** One built service running as its own process, which a test may kill -9 and restart. */
export class ServiceProcess {
  private handle!: ProcessHandle;
  readonly url: string;

  constructor(
    readonly name: ServiceName,
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts the process and waits until `/readyz` answers 200. */
  async start(): Promise<void> {
    this.handle = await startProcess(process.execPath, [`dist/apps/${this.name}/src/main.js`], {
      env: { ...this.env, [PORT_ENV[this.name]]: String(this.port) },
      name: this.name,
    });
    await eventually(
      async () => {
        const answer = await fetch(`${this.url}/readyz`);
        if (answer.status !== 200) throw new Error(`${this.name} not ready: ${answer.status}`);
      },
      { timeoutMs: 30_000, message: `${this.name} ready` },
    );
  }

  /** kill -9: no shutdown hook runs, in-flight work is cut wherever it is. */
  async kill(): Promise<void> {
    this.handle.kill('SIGKILL');
    await this.handle.exited;
  }

  /** SIGTERM, and the exit it ends with. */
  async terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.handle.kill('SIGTERM');
    return this.handle.exited;
  }

  output(): string[] {
    return this.handle.output();
  }

  get process(): ProcessHandle {
    return this.handle;
  }
}

/**
 * The mesh as real processes from dist/ (built by the jest global setup), against a
 * private broker: for tests that kill and restart services.
 */
export class ProcessMesh {
  private constructor(readonly services: ServiceProcess[]) {}

  static async start(
    nats: NatsServerHandle,
    layout: Partial<Record<ServiceName, number>>,
    extraEnv: Record<string, string> = {},
  ): Promise<ProcessMesh> {
    const services: ServiceProcess[] = [];
    const ingressPort = await freePort();
    const env: Record<string, string> = { ...testEnv(nats, extraEnv), LOG_LEVEL: extraEnv.LOG_LEVEL ?? 'warn' };
    env.PUBLIC_BASE_URL ??= `http://127.0.0.1:${ingressPort}`;
    for (const [name, replicas] of Object.entries(layout) as [ServiceName, number][]) {
      for (let i = 0; i < replicas; i++) {
        const port = name === 'callback-ingress' && i === 0 ? ingressPort : await freePort();
        services.push(new ServiceProcess(name, port, env));
      }
    }
    await Promise.all(services.map((service) => service.start()));
    return new ProcessMesh(services);
  }

  of(name: ServiceName, index = 0): ServiceProcess {
    const found = this.services.filter((service) => service.name === name)[index];
    if (!found) throw new Error(`no ${name} #${index} in this mesh`);
    return found;
  }

  async stop(): Promise<void> {
    await Promise.all(this.services.map((service) => service.terminate().catch(() => undefined)));
  }
}
