import { KV_KEYS, type PartitionCheckpoint } from '@backchannel/contracts';
import { JsonBucket } from './json-bucket.js';

export interface Lease {
  owner: string;
  expires_at: number;
}

interface Heartbeat {
  at: number;
}

/** A heartbeat this many lease TTLs old belongs to a replica that is gone: it is deleted. */
const STALE_MEMBER_TTLS = 12;

/** What the leases bucket holds: leases, replica heartbeats and partition checkpoints. */
export type LeaseBucketValue = Lease | Heartbeat | PartitionCheckpoint;

export interface LeaseOptions {
  /** `sequencer` or `injector`: each role shares its partitions among its own replicas. */
  role: string;
  partitions: number;
  memberId: string;
  /** A lease not renewed within this time is free for another replica. */
  leaseTtlMs: number;
  now: () => number;
}

/**
 * Spreads partitions over a role's live replicas through leases in the broker (KV,
 * compare-and-set on revisions). Leases make ownership efficient, not exclusive: a paused
 * replica can outlive its lease, so every effect downstream is compare-and-set too.
 */
export class PartitionLeases {
  private readonly owned = new Set<number>();

  constructor(
    private readonly bucket: JsonBucket<LeaseBucketValue>,
    private readonly options: LeaseOptions,
  ) {}

  /** One round: heartbeat, renew, take free leases up to a fair share, shed the excess. */
  async rebalance(): Promise<{ acquired: number[]; lost: number[] }> {
    const { role, memberId, partitions, leaseTtlMs, now } = this.options;
    await this.bucket.put(KV_KEYS.member(role, memberId), { at: now() });
    const fairShare = Math.ceil(partitions / (await this.liveMembers()));
    const acquired: number[] = [];
    const lost: number[] = [];
    for (let partition = 0; partition < partitions; partition++) {
      const key = KV_KEYS.lease(role, partition);
      const current = await this.bucket.get(key);
      const lease = current?.value as Lease | undefined;
      const mine = lease?.owner === memberId && lease.expires_at > now();
      const free = !lease || lease.expires_at <= now();
      const renewed: Lease = { owner: memberId, expires_at: now() + leaseTtlMs };
      if (mine && this.owned.size <= fairShare) {
        const ok = await this.bucket.update(key, renewed, current!.revision);
        if (ok === false) this.drop(partition, lost);
      } else if (mine) {
        await this.bucket.update(key, { owner: memberId, expires_at: 0 }, current!.revision);
        this.drop(partition, lost);
      } else if (free && this.owned.size < fairShare) {
        const ok = current
          ? await this.bucket.update(key, renewed, current.revision)
          : await this.bucket.create(key, renewed);
        if (ok !== false && !this.owned.has(partition)) {
          this.owned.add(partition);
          acquired.push(partition);
        }
      } else {
        this.drop(partition, lost);
      }
    }
    return { acquired, lost };
  }

  /** Gives every lease back at shutdown so the others take over at once. */
  async releaseAll(): Promise<void> {
    for (const partition of this.owned) {
      const key = KV_KEYS.lease(this.options.role, partition);
      const current = await this.bucket.get(key);
      if ((current?.value as Lease | undefined)?.owner === this.options.memberId) {
        await this.bucket.update(key, { owner: this.options.memberId, expires_at: 0 }, current!.revision);
      }
    }
    this.owned.clear();
    await this.bucket.delete(KV_KEYS.member(this.options.role, this.options.memberId));
  }

  ownedPartitions(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  private drop(partition: number, lost: number[]): void {
    if (this.owned.delete(partition)) lost.push(partition);
  }

  private async liveMembers(): Promise<number> {
    const { role, leaseTtlMs, now } = this.options;
    const keys = await this.bucket.keys(KV_KEYS.member(role, '*'));
    let live = 0;
    for (const key of keys) {
      const heartbeat = (await this.bucket.get(key))?.value as Heartbeat | undefined;
      if (heartbeat && now() - heartbeat.at < leaseTtlMs) live++;
      // A replica killed without `releaseAll` leaves its heartbeat behind; unswept, every
      // round would read one more key per crash, forever.
      else if (heartbeat && now() - heartbeat.at > leaseTtlMs * STALE_MEMBER_TTLS) await this.bucket.delete(key);
    }
    return Math.max(1, live);
  }
}
