import { JsonBucket, type Versioned } from '@backchannel/messaging';
import type { SealedToken } from './idempotency-seal.js';

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
