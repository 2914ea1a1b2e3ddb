import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from '@backchannel/contracts';

/**
 * `Authorization: Bearer <INTERNAL_API_TOKEN>` on every `/internal/v1/` route, checked
 * before the body is read. Unset token: everyone is refused (CONTRACT.md §2). Compared
 * in constant time over hashes, so neither length nor content leaks through timing.
 */
export function internalAuthCheck(internalApiToken: string | undefined): (authorization: unknown) => void {
  const expected = internalApiToken ? sha256(internalApiToken) : undefined;
  return (authorization) => {
    const presented =
      typeof authorization === 'string' && authorization.startsWith('Bearer ') ? authorization.slice(7) : undefined;
    if (!expected || presented === undefined || !timingSafeEqual(sha256(presented), expected)) {
      throw new ApiError('unauthorized', 'a valid internal bearer token is required');
    }
  };
}

export const INTERNAL_PREFIX = '/internal/';

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
