import { KV_KEYS, type WorkItemRecord } from '@backchannel/contracts';
import { JsonBucket } from './json-bucket.js';

/**
 * Work item records by id (bucket bc-work-items): written once by the token authority
 * at registration, read by the ingress on every callback, by the dispatcher and others.
 */
export class WorkItemRecords {
  constructor(private readonly bucket: JsonBucket<WorkItemRecord>) {}

  async get(workItemId: string): Promise<WorkItemRecord | null> {
    return (await this.bucket.get(KV_KEYS.workItem(workItemId)))?.value ?? null;
  }

  async put(record: WorkItemRecord): Promise<void> {
    await this.bucket.put(KV_KEYS.workItem(record.work_item_id), record);
  }
}
