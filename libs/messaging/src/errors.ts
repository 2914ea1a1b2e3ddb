/**
 * The broker could not take or give what was asked (down, reconnecting, timed out).
 * Edges answer 503 `unavailable` with `Retry-After`; consumers nak with a delay.
 */
export class BrokerUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`broker unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'BrokerUnavailableError';
  }
}

/** JetStream's "wrong last sequence": another write got there first (a lost compare-and-set). */
export function isWrongLastSequence(error: unknown): boolean {
  const code = (error as { code?: number }).code;
  const apiCode = (error as { api_error?: { err_code?: number } }).api_error?.err_code;
  return code === 10071 || apiCode === 10071 || /wrong last sequence/i.test(String((error as Error)?.message));
}
