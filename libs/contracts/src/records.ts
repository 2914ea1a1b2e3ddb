/**
 * Records kept in KV buckets. Ids are encoded where they become keys (`kvSafeId`).
 */
import type { Delivery, WorkItemKind } from './messages.js';

/** A work item's immutable facts, by id (bucket bc-work-items). Never the token itself. */
export interface WorkItemRecord {
  work_item_id: string;
  conversation_id: string;
  tenant_id: string;
  sequence: number;
  kind: WorkItemKind;
  name?: string;
  turn_id?: string;
  ordered: boolean;
  delivery: Delivery;
  timeout_ms: number;
  registered_at: string;
  expires_at: string;
  /** SHA-256 of the callback token, hex. */
  token_hash: string;
}

/** A tenant API key (bucket bc-api-keys), by id. Never the key itself. */
export interface ApiKeyRecord {
  key_id: string;
  tenant_id: string;
  key_hash: string;
  state: 'active' | 'revoked';
  created_at: string;
  revoked_at?: string;
}

/**
 * How far one role (sequencer, injector) has applied one partition of its stream (bucket
 * bc-leases): every message of the partition at or below stream sequence `seq` is applied,
 * so a replica taking the partition over starts right after it.
 */
export interface PartitionCheckpoint {
  seq: number;
  at: string;
}

/** KV keys, declared once. */
export const KV_KEYS = {
  workItem: (workItemId: string) => workItemId,
  apiKeyById: (keyId: string) => `id.${keyId}`,
  apiKeyByHash: (keyHash: string) => `hash.${keyHash}`,
  registrationIdempotency: (scopeHash: string) => `reg.${scopeHash}`,
  addMessagesIdempotency: (scopeHash: string) => `msg.${scopeHash}`,
  sequencerState: (partition: number, conversationKey: string) => `p${partition}.${conversationKey}`,
  sequencerPartitionFilter: (partition: number) => `p${partition}.>`,
  lease: (role: string, partition: number) => `lease.${role}.p${partition}`,
  member: (role: string, memberId: string) => `member.${role}.${memberId}`,
  checkpoint: (role: string, partition: number) => `checkpoint.${role}.p${partition}`,
} as const;
