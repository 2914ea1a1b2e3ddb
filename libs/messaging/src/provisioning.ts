import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import type { BucketSpec, StreamSpec } from '@backchannel/contracts';

/**
 * Creates a stream from its spec, or updates it to match. Idempotent, so every replica
 * of every service may run it at start.
 */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec, replicas: number): Promise<void> {
  const config: Partial<StreamConfig> & { name: string } = {
    name: spec.name,
    subjects: spec.subjects,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(spec.maxAgeMs),
    duplicate_window: nanos(spec.duplicateWindowMs),
    max_msg_size: spec.maxMsgSize,
    allow_direct: spec.allowDirect,
    num_replicas: replicas,
  };
  try {
    await jsm.streams.info(spec.name);
    await jsm.streams.update(spec.name, config);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.streams.add(config);
  }
}

/** Opens a KV bucket, creating it from its spec when missing. */
export async function ensureBucket(nc: NatsConnection, spec: BucketSpec, replicas: number): Promise<KV> {
  const kvm = new Kvm(nc);
  return kvm.create(spec.bucket, {
    history: spec.history,
    ttl: spec.ttlMs,
    replicas,
    storage: StorageType.File,
    // A follower may answer a direct get before it has the latest write; replicated
    // buckets are read from their leader (a work item record must be there once its
    // token is out; a snapshot must be the last one saved). See StreamReads.
    allow_direct: replicas === 1,
  });
}

function isNotFound(error: unknown): boolean {
  const code = (error as { code?: number; status?: number }).code;
  const status = (error as { status?: number }).status;
  return code === 10059 || status === 404 || /not found/i.test(String((error as Error).message));
}
