import { KV_KEYS, type WorkItemRecord } from '@backchannel/contracts';
import { JsonBucket, type Versioned } from '@backchannel/messaging';
import type { SealedToken } from './idempotency-seal.js';

/** Work item records by id (bucket bc-work-items). */
export class WorkItemRecords {
  constructor(private readonly bucket: JsonBucket<WorkItemRecord>) {}

  async get(workItemId: string): Promise<WorkItemRecord | null> {
    return (await this.bucket.get(KV_KEYS.workItem(workItemId)))?.value ?? null;
  }

  async put(record: WorkItemRecord): Promise<void> {
    await this.bucket.put(KV_KEYS.workItem(record.work_item_id), record);
  }
}

/** A registration's idempotency claim: its work item id and its token, sealed. */
export interface RegistrationClaim {
  work_item_id: string;
  sealed_token: SealedToken;
  created_at: string;
}

/** Registration idempotency claims (bucket bc-idempotency). */
export class IdempotencyRecords {
  constructor(private readonly bucket: JsonBucket<RegistrationClaim>) {}

  create(key: string, claim: RegistrationClaim): Promise<number | false> {
    return this.bucket.create(key, claim);
  }

  get(key: string): Promise<Versioned<RegistrationClaim> | null> {
    return this.bucket.get(key);
  }
}
