/**
 * Streams, KV buckets and durable consumers, declared once. `libs/messaging` provisions
 * them from these specs at start. Durations are milliseconds here; the messaging lib
 * turns them into the nanoseconds JetStream wants.
 */
import { RELEASE_SUBJECT_PREFIX, TRANSCRIPT_SUBJECT_PREFIX, WORK_SUBJECT_PREFIX } from './subjects.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** The longest `timeout_ms` a work item may have (CONTRACT.md §2). */
export const MAX_WORK_ITEM_TIMEOUT_MS = HOUR_MS;

/**
 * How long a conversation may live. Streams that hold a conversation's facts keep them
 * this long; a conversation older than this is forgotten (docs/architecture.md).
 */
export const CONVERSATION_RETENTION_MS = 7 * DAY_MS;

/**
 * The broker's duplicate window. Short on purpose: each id held costs broker memory
 * (TOOLCHAIN.md); consumers are idempotent beyond it.
 */
export const DUPLICATE_WINDOW_MS = 2 * MINUTE_MS;

export interface StreamSpec {
  name: string;
  subjects: string[];
  maxAgeMs: number;
  duplicateWindowMs: number;
  /** Largest message, bytes: a callback body plus its envelope. */
  maxMsgSize: number;
  /** Let clients read with direct get (last by subject), which the ledger relies on. */
  allowDirect: boolean;
}

export interface BucketSpec {
  bucket: string;
  /** Per-bucket TTL; 0 keeps values until deleted. */
  ttlMs: number;
  history: number;
}

const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * The work log: conversation logs, work item ends and progress. It enforces the "first
 * end wins" rule, so it must keep messages longer than that rule must hold: a
 * conversation's life (DESIGN.md), which also covers the longest timeout plus
 * `REPLAY_TTL_MS`.
 */
export const WORK_STREAM: StreamSpec = {
  name: 'BC_WORK',
  subjects: [`${WORK_SUBJECT_PREFIX}.>`],
  maxAgeMs: CONVERSATION_RETENTION_MS + DAY_MS + HOUR_MS,
  duplicateWindowMs: DUPLICATE_WINDOW_MS,
  maxMsgSize: MAX_MESSAGE_BYTES,
  allowDirect: true,
};

/** Releases in conversation order, from the sequencer to the injector. */
export const RELEASE_STREAM: StreamSpec = {
  name: 'BC_RELEASES',
  subjects: [`${RELEASE_SUBJECT_PREFIX}.>`],
  maxAgeMs: DAY_MS,
  duplicateWindowMs: DUPLICATE_WINDOW_MS,
  maxMsgSize: MAX_MESSAGE_BYTES,
  allowDirect: true,
};

/** Every conversation's transcript. */
export const TRANSCRIPT_STREAM: StreamSpec = {
  name: 'BC_TRANSCRIPT',
  subjects: [`${TRANSCRIPT_SUBJECT_PREFIX}.>`],
  maxAgeMs: CONVERSATION_RETENTION_MS,
  duplicateWindowMs: DUPLICATE_WINDOW_MS,
  maxMsgSize: MAX_MESSAGE_BYTES,
  allowDirect: true,
};

export const STREAMS: readonly StreamSpec[] = [WORK_STREAM, RELEASE_STREAM, TRANSCRIPT_STREAM];

/** Work item records by id (immutable facts and the token's hash); read by the ingress on every callback. */
export const WORK_ITEMS_BUCKET: BucketSpec = {
  bucket: 'bc-work-items',
  ttlMs: WORK_STREAM.maxAgeMs,
  history: 1,
};

/** Tenant API keys, by id and by hash. Never the key itself. */
export const API_KEYS_BUCKET: BucketSpec = { bucket: 'bc-api-keys', ttlMs: 0, history: 1 };

/** Idempotency records: registrations by `idempotency_key`, Add Messages by `Idempotency-Key`. */
export const IDEMPOTENCY_BUCKET: BucketSpec = {
  bucket: 'bc-idempotency',
  ttlMs: CONVERSATION_RETENTION_MS,
  history: 1,
};

/** The sequencer's per-conversation state, updated by compare-and-set. */
export const SEQUENCER_STATE_BUCKET: BucketSpec = {
  bucket: 'bc-sequencer-state',
  ttlMs: CONVERSATION_RETENTION_MS + DAY_MS,
  history: 1,
};

/** Partition leases, replica heartbeats and partition checkpoints of the sequencer and the injector. */
export const LEASES_BUCKET: BucketSpec = { bucket: 'bc-leases', ttlMs: 0, history: 1 };

export const BUCKETS: readonly BucketSpec[] = [
  WORK_ITEMS_BUCKET,
  API_KEYS_BUCKET,
  IDEMPOTENCY_BUCKET,
  SEQUENCER_STATE_BUCKET,
  LEASES_BUCKET,
];
