import { KV_KEYS, type ApiKeyRecord } from '@backchannel/contracts';
import { JsonBucket } from '@backchannel/messaging';

/** Tenant API keys (bucket bc-api-keys), read-only here: the token authority writes them. */
export class ApiKeyStore {
  constructor(private readonly bucket: JsonBucket<ApiKeyRecord | { key_id: string }>) {}

  /** The key record a key hash points at, or null when unknown. */
  async findByHash(keyHash: string): Promise<ApiKeyRecord | null> {
    const index = await this.bucket.get(KV_KEYS.apiKeyByHash(keyHash));
    if (!index || typeof index.value.key_id !== 'string') return null;
    return this.findById(index.value.key_id);
  }

  async findById(keyId: string): Promise<ApiKeyRecord | null> {
    const record = await this.bucket.get(KV_KEYS.apiKeyById(keyId));
    return record && 'tenant_id' in record.value ? record.value : null;
  }
}
