import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * "The same body" means the same JSON value (CONTRACT.md §3): hash the RFC 8785
 * canonical form, so re-serialised bodies (other key order, spacing) match.
 */
export function bodyHash(body: unknown): string {
  return createHash('sha256')
    .update(canonicalize(body) ?? 'null')
    .digest('hex');
}
