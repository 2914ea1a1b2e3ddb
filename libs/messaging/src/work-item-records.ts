import type { KV } from '@nats-io/kv';
import { KV_KEYS, type WorkItemRecord } from '@backchannel/contracts';
import { JsonBucket } from './json-bucket.js';
import { decodeJson } from './json.js';

/**
 * Work item records by id (bucket bc-work-items): written once by the token authority
 * at registration, read by the ingress on every callback, by the dispatcher and others.
 */
export class WorkItemRecords {
  private readonly bucket: JsonBucket<WorkItemRecord>;

  constructor(kv: KV) {
    this.bucket = new JsonBucket<WorkItemRecord>(kv);
  }

  async get(workItemId: string): Promise<WorkItemRecord | null> {
    return (await this.bucket.get(KV_KEYS.workItem(workItemId)))?.value ?? null;
  }

  async put(record: WorkItemRecord): Promise<void> {
    await this.bucket.put(KV_KEYS.workItem(record.work_item_id), record);
  }
}

/**
 * An in-memory mirror of new work item records, fed by a KV watch, so the ingress checks
 * a token without a broker round trip. Records are immutable, so a mirrored one is never
 * stale; a miss (a callback faster than the watch, a restart, or a record already pruned)
 * reads the bucket.
 *
 * A record leaves the mirror once its item's deadline has passed: a callback after that is
 * rare (a 410, or a late replay within `REPLAY_TTL_MS`) and pays one read. Kept until the
 * end of the replay window instead, the mirror held every registration of the last
 * timeout + 10 minutes: at 1,000 registrations/s some 630,000 records, ~280 MB, more than
 * the ingress's heap in its default container (docs/deploy.md, Sizing).
 */
export class MirroredWorkItemRecords extends WorkItemRecords {
  private readonly mirror = new Map<string, WorkItemRecord>();
  private stopWatch?: () => void;
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly kv: KV,
    private readonly now: () => number = Date.now,
  ) {
    super(kv);
  }

  override async get(workItemId: string): Promise<WorkItemRecord | null> {
    return this.mirror.get(workItemId) ?? (await super.get(workItemId));
  }

  async start(): Promise<void> {
    const watch = await this.kv.watch({ include: 'updates', ignoreDeletes: true });
    this.stopWatch = () => watch.stop();
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== 'PUT' || entry.length === 0) continue;
        const record = decodeJson<WorkItemRecord>(entry.value);
        this.mirror.set(record.work_item_id, record);
      }
    })().catch(() => undefined);
    this.pruneTimer = setInterval(() => this.pruneExpired(), 10_000);
    this.pruneTimer.unref();
  }

  stop(): void {
    this.stopWatch?.();
    if (this.pruneTimer) clearInterval(this.pruneTimer);
  }

  get size(): number {
    return this.mirror.size;
  }

  /** Drops the records whose deadline has passed (every 10 s). */
  pruneExpired(): void {
    const now = this.now();
    for (const [workItemId, record] of this.mirror) {
      if (Date.parse(record.expires_at) <= now) this.mirror.delete(workItemId);
    }
  }
}
