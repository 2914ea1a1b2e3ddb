import { lookup } from 'node:dns/promises';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Name resolution for tool URLs, behind a port: the pre-check and the connection both
 * ask it, so what was checked is what is connected to, and tests swap in a stub that
 * answers without DNS (and without any connection being made).
 */
export abstract class HostResolver {
  abstract resolve(hostname: string): Promise<ResolvedAddress[]>;
}

/** A resolution that failed for good (no such host) rather than for now. */
export class HostNotFoundError extends Error {
  constructor(readonly hostname: string) {
    super('the host could not be resolved');
    this.name = 'HostNotFoundError';
  }
}

const RESOLVE_TIMEOUT_MS = 5_000;
const NOT_FOUND_CODES = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

/** The operating system's resolver (getaddrinfo), every address, in its order. */
export class SystemResolver extends HostResolver {
  async resolve(hostname: string): Promise<ResolvedAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('name resolution timed out')), RESOLVE_TIMEOUT_MS);
      timer.unref();
    });
    try {
      const addresses = await Promise.race([lookup(hostname, { all: true, verbatim: true }), timeout]);
      return addresses.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
    } catch (error) {
      if (NOT_FOUND_CODES.has((error as NodeJS.ErrnoException).code ?? '')) throw new HostNotFoundError(hostname);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}
