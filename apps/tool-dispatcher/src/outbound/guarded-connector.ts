import type { LookupAddress, LookupOneOptions } from 'node:dns';
import { buildConnector } from 'undici';
import { classifyAddress, ipLiteralOf } from './address-policy.js';
import type { HostResolver, ResolvedAddress } from './host-resolver.js';

/** A connection refused because of where it would have gone. */
export class BlockedAddressError extends Error {
  readonly code = 'BC_BLOCKED_ADDRESS';
  constructor(readonly addressClass: string) {
    super(`refused to connect to a ${addressClass} address`);
    this.name = 'BlockedAddressError';
  }
}

export function isBlockedAddressError(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if ((current as { code?: string }).code === 'BC_BLOCKED_ADDRESS') return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

type LookupCallback = (error: Error | null, address: string | LookupAddress[], family?: number) => void;

export interface GuardOptions {
  resolver: HostResolver;
  allowPrivateNetworks: boolean;
  connectTimeoutMs?: number;
}

/**
 * An undici connector that checks the address actually connected to (CONTRACT.md §6):
 * names are resolved through the resolver and only public addresses are handed to the
 * socket; IP literals, which Node connects to without any lookup, are checked here.
 */
export function guardedConnector(options: GuardOptions): buildConnector.connector {
  const connect = buildConnector({
    lookup: guardedLookup(options) as never,
    timeout: options.connectTimeoutMs ?? 10_000,
  });
  return (connectOptions, callback) => {
    const literal = ipLiteralOf(connectOptions.hostname);
    const addressClass = literal ? classifyAddress(literal) : 'public';
    if (!options.allowPrivateNetworks && addressClass !== 'public') {
      callback(new BlockedAddressError(addressClass), null);
      return;
    }
    connect(connectOptions, callback);
  };
}

/** A `dns.lookup`-shaped function over the resolver that drops every refused address. */
export function guardedLookup(options: GuardOptions) {
  return (hostname: string, lookupOptions: LookupOneOptions & { all?: boolean }, callback: LookupCallback): void => {
    options.resolver.resolve(hostname).then(
      (resolved) => {
        const usable = usableAddresses(resolved, options.allowPrivateNetworks, lookupOptions.family);
        if (usable.length === 0) {
          const refused = resolved.find((entry) => classifyAddress(entry.address) !== 'public');
          callback(new BlockedAddressError(refused ? classifyAddress(refused.address) : 'unresolved'), []);
          return;
        }
        if (lookupOptions.all) callback(null, usable);
        else callback(null, usable[0].address, usable[0].family);
      },
      (error: Error) => callback(error, []),
    );
  };
}

function usableAddresses(resolved: ResolvedAddress[], allowPrivate: boolean, family: unknown): ResolvedAddress[] {
  const wantedFamily = family === 4 || family === 'IPv4' ? 4 : family === 6 || family === 'IPv6' ? 6 : undefined;
  return resolved.filter(
    (entry) =>
      (wantedFamily === undefined || entry.family === wantedFamily) &&
      (allowPrivate || classifyAddress(entry.address) === 'public'),
  );
}
