import { describe, expect, it } from '@jest/globals';
import { ApiError } from '@backchannel/contracts';
import { rateLimitKeyOf, retryAfterSeconds } from './rate-limit-key.js';

describe('rateLimitKeyOf', () => {
  const key = `bck_${'k'.repeat(43)}`;

  it('is the verified key id, never the key', async () => {
    const sut = await rateLimitKeyOf(() => Promise.resolve({ tenantId: 'tenant-a', keyId: 'key_01' }), '10.0.0.1');
    expect(sut).toBe('key:key_01');
    expect(sut).not.toContain(key);
  });

  it('falls back to the client address when the key is refused or cannot be looked up', async () => {
    const refused = () => Promise.reject(new ApiError('unauthorized'));
    const unreachable = () => Promise.reject(new Error('broker away'));
    expect(await rateLimitKeyOf(refused, '10.0.0.1')).toBe('address:10.0.0.1');
    expect(await rateLimitKeyOf(unreachable, '::1')).toBe('address:::1');
  });
});

describe('retryAfterSeconds', () => {
  it('rounds the remaining window up to whole seconds, at least 1', () => {
    expect(retryAfterSeconds(0)).toBe(1);
    expect(retryAfterSeconds(1)).toBe(1);
    expect(retryAfterSeconds(1_000)).toBe(1);
    expect(retryAfterSeconds(1_001)).toBe(2);
  });
});
