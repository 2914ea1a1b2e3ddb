import { ApiError } from '@backchannel/contracts';
import { classifyAddress, describeClass, ipLiteralOf, type AddressClass } from './address-policy.js';
import { HostNotFoundError, HostResolver } from './host-resolver.js';

const POINTER = '/tool/url';
const SCHEMES = new Set(['http:', 'https:']);

/**
 * The pre-check of a tool URL (CONTRACT.md §6, outbound safety), run before anything is
 * registered so a refusal is a clean 400 with nothing left behind. The connection itself
 * is checked again by the guarded connector: a name may resolve differently by then.
 */
export class ToolUrlGuard {
  constructor(
    private readonly resolver: HostResolver,
    private readonly allowPrivateNetworks: boolean,
  ) {}

  async check(rawUrl: string): Promise<URL> {
    const url = parseUrl(rawUrl);
    if (this.allowPrivateNetworks) return url;
    const literal = ipLiteralOf(url.hostname);
    if (literal) {
      refuseUnlessPublic(classifyAddress(literal));
      return url;
    }
    for (const { address } of await this.resolve(url.hostname)) refuseUnlessPublic(classifyAddress(address));
    return url;
  }

  private async resolve(hostname: string) {
    try {
      const addresses = await this.resolver.resolve(hostname);
      if (addresses.length === 0) throw new HostNotFoundError(hostname);
      return addresses;
    } catch (error) {
      if (error instanceof HostNotFoundError) {
        throw new ApiError('invalid_request', "the tool URL's host could not be resolved", { pointer: POINTER });
      }
      throw new ApiError('unavailable', "the tool URL's host could not be resolved now; retry", {
        headers: { 'retry-after': '1' },
      });
    }
  }
}

function parseUrl(rawUrl: string): URL {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new ApiError('invalid_request', 'tool.url must be an absolute URL', { pointer: POINTER });
  }
  if (!SCHEMES.has(url.protocol)) {
    throw new ApiError('invalid_request', 'tool.url must use http or https', { pointer: POINTER });
  }
  if (url.username || url.password) {
    throw new ApiError('invalid_request', 'tool.url must not carry credentials; use a signing secret', {
      pointer: POINTER,
    });
  }
  if (!url.hostname) throw new ApiError('invalid_request', 'tool.url must name a host', { pointer: POINTER });
  return url;
}

function refuseUnlessPublic(addressClass: AddressClass): void {
  if (addressClass === 'public') return;
  throw new ApiError(
    'invalid_request',
    `tool.url's host resolves to ${describeClass(addressClass)}; only public addresses are allowed`,
    { pointer: POINTER },
  );
}
