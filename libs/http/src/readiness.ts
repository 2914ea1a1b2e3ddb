/**
 * What `/readyz` reports: ready once connected and provisioned, not ready while the
 * broker is away or the service is shutting down (CONTRACT.md §7).
 */
export class Readiness {
  private started = false;
  private stopping = false;
  private brokerConnected = true;
  private readonly extraChecks = new Map<string, () => boolean>();

  markStarted(): void {
    this.started = true;
  }

  markStopping(): void {
    this.stopping = true;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  setBrokerConnected(connected: boolean): void {
    this.brokerConnected = connected;
  }

  /** False while the broker connection is down: edges answer 503 at once instead of waiting. */
  get isBrokerConnected(): boolean {
    return this.brokerConnected;
  }

  /** A service-specific condition, e.g. "its consumers are in place". */
  addCheck(name: string, check: () => boolean): void {
    this.extraChecks.set(name, check);
  }

  report(): { ready: boolean; checks: Record<string, boolean> } {
    const checks: Record<string, boolean> = {
      started: this.started,
      not_stopping: !this.stopping,
      broker_connected: this.brokerConnected,
    };
    for (const [name, check] of this.extraChecks) checks[name] = check();
    return { ready: Object.values(checks).every(Boolean), checks };
  }
}
