import { JsonBucket, type Versioned } from '@backchannel/messaging';

/**
 * An Add Messages idempotency claim (bucket bc-idempotency), keyed by a hash of tenant,
 * conversation and `Idempotency-Key`; never the key itself.
 * - `pending`: a request claimed the key and is appending; `owner_since` tells a live
 *   owner from a dead one.
 * - `done`: every message is appended; `entries` locate them in the transcript.
 * - `abandoned`: the owner failed mid-way and says so; a retry completes the work at once.
 */
export interface AddMessagesClaim {
  state: 'pending' | 'done' | 'abandoned';
  /** Scopes the message ids of this claim's appends, so a finishing retry is deduplicated. */
  nonce: string;
  /** The transcript's last position before the claim: its messages all come after it. */
  from_position: number;
  /** Start of the idempotency window (epoch ms). */
  claimed_at: number;
  /** When the current owner took the claim (epoch ms). */
  owner_since: number;
  entries?: { position: number; seq: number }[];
}

export class AddMessagesClaims {
  constructor(private readonly bucket: JsonBucket<AddMessagesClaim>) {}

  get(key: string): Promise<Versioned<AddMessagesClaim> | null> {
    return this.bucket.get(key);
  }

  /** Claims an absent key; false when someone else holds it. */
  create(key: string, claim: AddMessagesClaim): Promise<number | false> {
    return this.bucket.create(key, claim);
  }

  /** Replaces the claim only if still at `revision`; false when it moved on. */
  update(key: string, claim: AddMessagesClaim, revision: number): Promise<number | false> {
    return this.bucket.update(key, claim, revision);
  }
}
