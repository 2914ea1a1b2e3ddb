import { SSE_KEEPALIVE_MS } from '@backchannel/contracts';
import type { Clock } from '@backchannel/config';

/** Knobs a test (or a deployment) may turn; the contract's values are the defaults. */
export interface InjectorOptions {
  /** SSE keep-alive comment interval (CONTRACT.md §4: 15 s). */
  sseKeepAliveMs?: number;
  /** How long a verified API key is trusted before it is read again (revocation within 1 s). */
  apiKeyCacheMs?: number;
  clock?: Clock;
}

/** The resolved options, injectable by class. */
export class InjectorSettings {
  readonly sseKeepAliveMs: number;
  readonly apiKeyCacheMs: number;

  constructor(options: InjectorOptions = {}) {
    this.sseKeepAliveMs = options.sseKeepAliveMs ?? SSE_KEEPALIVE_MS;
    this.apiKeyCacheMs = Math.min(options.apiKeyCacheMs ?? DEFAULT_API_KEY_CACHE_MS, MAX_API_KEY_CACHE_MS);
  }
}

const DEFAULT_API_KEY_CACHE_MS = 250;
/** A revoked key must be refused within 1 s (CONTRACT.md §2): never trust a lookup longer than this. */
const MAX_API_KEY_CACHE_MS = 500;

/** The partition leases bucket (a JsonBucket), for the release consumers. */
export const LEASES = Symbol('LEASES');
