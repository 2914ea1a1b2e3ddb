/** Numeric limits of the external contract, declared once. */

/** `metadata` of a conversation, serialised (CONTRACT.md §2). */
export const MAX_METADATA_BYTES = 4 * 1024;
/** `timeout_ms` bounds and default (CONTRACT.md §2). */
export const MIN_TIMEOUT_MS = 1_000;
export const MAX_TIMEOUT_MS = 3_600_000;
export const DEFAULT_TIMEOUT_MS = 30_000;
/** `ack_timeout_ms` bounds and default (CONTRACT.md §6). */
export const MIN_ACK_TIMEOUT_MS = 100;
export const MAX_ACK_TIMEOUT_MS = 10_000;
export const DEFAULT_ACK_TIMEOUT_MS = 3_000;
/** Idempotency keys (CONTRACT.md §2, §4). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;
/** Progress (CONTRACT.md §3). */
export const MAX_PROGRESS_UPDATES = 10;
export const MAX_PROGRESS_MESSAGE_LENGTH = 1_000;
export const MAX_PROGRESS_ID_LENGTH = 64;
/** Add Messages (CONTRACT.md §4). */
export const MAX_MESSAGES_PER_ADD = 20;
export const MAX_MESSAGE_CONTENT_LENGTH = 32_768;
export const ADD_MESSAGES_IDEMPOTENCY_MS = 10 * 60_000;
/** Transcript pages (CONTRACT.md §4). */
export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1_000;
export const MAX_PAGE_BYTES = 512 * 1024;
/** SSE keep-alive (CONTRACT.md §4). */
export const SSE_KEEPALIVE_MS = 15_000;
/** Callback body (CONTRACT.md §3, §8). */
export const DEFAULT_CALLBACK_MAX_BODY_BYTES = 262_144;
export const MAX_CALLBACK_MAX_BODY_BYTES = 524_288;
/** Graceful shutdown budget (CONTRACT.md §8). */
export const SHUTDOWN_GRACE_MS = 10_000;
/** The `Retry-After` given with 503 `unavailable`, seconds. */
export const RETRY_AFTER_UNAVAILABLE_S = 1;
