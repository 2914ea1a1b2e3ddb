import type { Caller } from './tenant-access.service.js';

/**
 * The bucket a tenant API request counts in (docs/injector.md, rate limits): its API key's
 * id once the key is verified — never the key itself, which is a secret — and otherwise
 * (no key, a malformed, unknown or revoked one, or a lookup that failed) its client
 * address, so a flood of bad keys from one address is throttled too. A valid key never
 * shares a bucket with its address: one tenant's traffic does not limit another's.
 */
export async function rateLimitKeyOf(authenticate: () => Promise<Caller>, clientAddress: string): Promise<string> {
  try {
    const caller = await authenticate();
    return `key:${caller.keyId}`;
  } catch {
    return `address:${clientAddress}`;
  }
}

/** `Retry-After` in whole seconds (at least 1) for a window that resets in `ttlMs`. */
export function retryAfterSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1_000));
}
