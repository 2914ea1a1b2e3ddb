import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { API_KEY_PREFIX, CALLBACK_TOKEN_PREFIX } from './ids.js';

/**
 * How secrets are minted and kept (CONTRACT.md §1): 256 random bits, shown once, stored
 * only as a SHA-256 hash, compared in constant time. A hash of 256 random bits needs no
 * salt or stretching: it cannot be guessed, only stolen, and the hash is useless to a thief.
 */
export function mintCallbackToken(): string {
  return `${CALLBACK_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function mintApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** Hex SHA-256 of a secret: what the stores keep. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time comparison of a presented secret against a stored hash. */
export function secretMatchesHash(secret: string, storedHashHex: string): boolean {
  const presented = createHash('sha256').update(secret).digest();
  const stored = Buffer.from(storedHashHex, 'hex');
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}
