import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * A retried registration with the same `idempotency_key` must return the same token
 * (CONTRACT.md §2), yet tokens are stored only as hashes. So the idempotency record
 * keeps the token sealed (AES-256-GCM) under a key derived from the idempotency key
 * itself, which only the caller holds: the store alone can neither read nor use it.
 * The record's own key is a different hash of the same scope.
 */
export interface SealedToken {
  iv: string;
  ciphertext: string;
  tag: string;
}

export function idempotencyScopeHash(conversationId: string, idempotencyKey: string): string {
  return createHash('sha256').update(`bc-idem-id\0${conversationId}\0${idempotencyKey}`).digest('hex');
}

export function sealToken(token: string, conversationId: string, idempotencyKey: string): SealedToken {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(conversationId, idempotencyKey), iv);
  const ciphertext = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
  return {
    iv: iv.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

export function unsealToken(sealed: SealedToken, conversationId: string, idempotencyKey: string): string {
  const decipher = createDecipheriv(
    'aes-256-gcm',
    sealingKey(conversationId, idempotencyKey),
    Buffer.from(sealed.iv, 'base64'),
  );
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
}

function sealingKey(conversationId: string, idempotencyKey: string): Buffer {
  return createHash('sha256').update(`bc-idem-seal\0${conversationId}\0${idempotencyKey}`).digest();
}
