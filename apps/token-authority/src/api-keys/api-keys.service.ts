import { Injectable } from '@nestjs/common';
import { ulid } from 'ulid';
import {
  API_KEY_ID_PREFIX,
  ApiError,
  KV_KEYS,
  hashSecret,
  mintApiKey,
  type ApiKeyRecord,
} from '@backchannel/contracts';
import { JsonBucket } from '@backchannel/messaging';
import { Clock } from '@backchannel/config';

/** Tenant API keys: shown once at creation, kept as a hash, revocable. */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly keys: JsonBucket<ApiKeyRecord | { key_id: string }>,
    private readonly clock: Clock,
  ) {}

  async create(tenantId: string): Promise<{ api_key: string; key_id: string; tenant_id: string; created_at: string }> {
    const apiKey = mintApiKey();
    const record: ApiKeyRecord = {
      key_id: `${API_KEY_ID_PREFIX}${ulid()}`,
      tenant_id: tenantId,
      key_hash: hashSecret(apiKey),
      state: 'active',
      created_at: this.clock.nowIso(),
    };
    // Record first, then the hash index: an index entry never points at nothing.
    await this.keys.put(KV_KEYS.apiKeyById(record.key_id), record);
    await this.keys.put(KV_KEYS.apiKeyByHash(record.key_hash), { key_id: record.key_id });
    return { api_key: apiKey, key_id: record.key_id, tenant_id: tenantId, created_at: record.created_at };
  }

  async revoke(keyId: string): Promise<{ key_id: string; tenant_id: string; state: 'revoked'; revoked_at: string }> {
    const stored = await this.keys.get(KV_KEYS.apiKeyById(keyId));
    if (!stored || !('tenant_id' in stored.value)) throw new ApiError('not_found', 'no such API key');
    const record = stored.value;
    const revoked: ApiKeyRecord =
      record.state === 'revoked' ? record : { ...record, state: 'revoked', revoked_at: this.clock.nowIso() };
    if (record.state !== 'revoked') await this.keys.put(KV_KEYS.apiKeyById(keyId), revoked);
    return {
      key_id: keyId,
      tenant_id: revoked.tenant_id,
      state: 'revoked',
      revoked_at: revoked.revoked_at ?? this.clock.nowIso(),
    };
  }
}
