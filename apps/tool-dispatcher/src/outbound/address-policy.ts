import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Which addresses a tool request may connect to (CONTRACT.md §6, outbound safety): only
 * global unicast. Everything ipaddr.js files under a special range (loopback, private,
 * link-local, multicast, unspecified, carrier-grade NAT, reserved, documentation, 6to4,
 * Teredo, NAT64…) is refused, and so are the cloud metadata endpoints, some of which sit
 * in otherwise public space.
 */
export type AddressClass =
  | 'public'
  | 'metadata'
  | 'invalid'
  | 'ipv4Compatible'
  | ReturnType<ipaddr.IPv4['range']>
  | ReturnType<ipaddr.IPv6['range']>;

/** Cloud instance metadata and platform endpoints, refused even where they look public. */
export const METADATA_ADDRESSES: readonly string[] = [
  '169.254.169.254', // AWS, GCP, Azure, OpenStack, DigitalOcean…
  '169.254.170.2', // AWS ECS task metadata
  '169.254.169.123', // AWS time sync
  '100.100.100.200', // Alibaba Cloud
  '168.63.129.16', // Azure wire server
  '192.0.0.192', // Oracle Cloud
  'fd00:ec2::254', // AWS over IPv6
  'fd00:ec2::23', // AWS DNS over IPv6
];

const METADATA = new Set(METADATA_ADDRESSES.map((address) => normalise(address)));

/** IPv4-compatible IPv6 (::a.b.c.d, deprecated): never a legitimate tool address. */
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');

/** Classifies one IP address (v4 or v6, v4-mapped v6 judged as v4). */
export function classifyAddress(address: string): AddressClass {
  const parsed = parse(address);
  if (!parsed) return 'invalid';
  if (METADATA.has(parsed.toNormalizedString())) return 'metadata';
  const range = parsed.range();
  if (range !== 'unicast') return range;
  if (parsed.kind() === 'ipv6' && parsed.match(IPV4_COMPATIBLE)) return 'ipv4Compatible';
  return 'public';
}

export function isPublicAddress(address: string): boolean {
  return classifyAddress(address) === 'public';
}

/** The address in the form a URL's host or a resolver may give, or null if it is not an IP literal. */
export function ipLiteralOf(host: string): string | null {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return isIP(bare) === 0 ? null : bare;
}

/** A human name for a refused class, for error details (never the address itself). */
export function describeClass(addressClass: AddressClass): string {
  const names: Partial<Record<AddressClass, string>> = {
    loopback: 'a loopback',
    private: 'a private',
    uniqueLocal: 'a private (unique local)',
    linkLocal: 'a link-local',
    multicast: 'a multicast',
    broadcast: 'a broadcast',
    unspecified: 'an unspecified',
    metadata: 'a cloud metadata',
    carrierGradeNat: 'a carrier-grade NAT',
    invalid: 'an invalid',
  };
  return `${names[addressClass] ?? 'a reserved'} address`;
}

function parse(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (!ipaddr.isValid(bare)) return null;
  const parsed = ipaddr.parse(bare);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed;
}

function normalise(address: string): string {
  return ipaddr.parse(address).toNormalizedString();
}
