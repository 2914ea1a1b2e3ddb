/**
 * Faults for the chaos runs, one at a time (a fault ends — broker back, service restarted
 * and ready — before the next begins): broker kill -9 and restart, broker SIGSTOP, service
 * kill -9 and restart, service SIGSTOP past its leases. Waiting a chosen time
 * is the fault itself here (how long something stays down), never a wait for a condition.
 */
import type { ServiceProcess } from '../support/process-mesh.js';
import { between, type Rng } from './workload.js';

/** What a fault can hit: a broker (single server or one cluster node) and the services. */
export interface Broker {
  readonly label: string;
  /** How `kill()` stops it, for the fault log: `kill -9` unless said otherwise. */
  readonly stopsWith?: string;
  kill(): Promise<void>;
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
}

export class FaultInjector {
  /** One line per fault, with its time since the start of the run. */
  readonly log: string[] = [];
  private readonly started = Date.now();

  constructor(private readonly rng: Rng) {}

  /** kill -9 the broker (or stop it, see `stopsWith`), leave it down `downMs`, start it again on the same port and store. */
  async crashBroker(broker: Broker, downMs: [number, number] = [200, 2_000]): Promise<void> {
    const down = between(this.rng, ...downMs);
    this.note(`${broker.label} ${broker.stopsWith ?? 'kill -9'}, down ${down} ms`);
    await broker.kill();
    await hold(down);
    await broker.restart();
  }

  /** SIGSTOP the broker: connections stay open, nothing answers (a stalled host). */
  async pauseBroker(broker: Broker, pauseMs: [number, number]): Promise<void> {
    const pause = between(this.rng, ...pauseMs);
    this.note(`${broker.label} SIGSTOP ${pause} ms`);
    broker.pause();
    try {
      await hold(pause);
    } finally {
      broker.resume();
    }
  }

  /** kill -9 a service at whatever it is doing, then start it again and wait until ready. */
  async crashService(service: ServiceProcess, downMs: [number, number] = [0, 1_000]): Promise<void> {
    const down = between(this.rng, ...downMs);
    this.note(`${service.name}:${service.port} kill -9, down ${down} ms`);
    await service.kill();
    await hold(down);
    await restartService(service);
  }

  /**
   * SIGSTOP a service for `stallMs`: past the lease TTL (5 s) its partitions move to
   * another replica, which starts them after their checkpoints and so applies again what
   * the stalled one had in flight; when it wakes it still believes it owns them and goes
   * on applying (the overlap leases allow) until its next lease round.
   */
  async stallService(service: ServiceProcess, stallMs: number): Promise<void> {
    this.note(`${service.name}:${service.port} SIGSTOP ${stallMs} ms`);
    service.process.kill('SIGSTOP');
    try {
      await hold(stallMs);
    } finally {
      service.process.kill('SIGCONT');
    }
  }

  note(text: string): void {
    this.log.push(`${((Date.now() - this.started) / 1000).toFixed(1)} s ${text}`);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rng() * items.length)];
  }

  between(min: number, max: number): number {
    return between(this.rng, min, max);
  }

  chance(): number {
    return this.rng();
  }
}

/** Starts a killed service again; a start that fails (e.g. the broker was away) is retried. */
export async function restartService(service: ServiceProcess, attempts = 5): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await service.start();
      return;
    } catch (error) {
      service.process.kill('SIGKILL');
      await service.process.exited;
      if (attempt >= attempts) throw error;
    }
  }
}

/** How long a fault lasts: the fault itself, not a wait for a condition. */
export function hold(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
