/**
 * HTTP header names the contract promises, lowercase as Node presents them. Declared once
 * like every other wire name (subjects, codes): renaming one is a contract change.
 */
export const CONTRACT_HEADERS = {
  /** Seconds a client waits before retrying a 429 or 503 (CONTRACT.md §3, §5). */
  retryAfter: 'retry-after',
  /** The call's control id on every outbound tool request (CONTRACT.md §6). */
  callControlId: 'x-call-control-id',
  /** The callback token a provider posts back with (CONTRACT.md §3). */
  callbackToken: 'x-callback-token',
  /** Makes an Add Messages retry answer the same messages (CONTRACT.md §4). */
  idempotencyKey: 'idempotency-key',
  /** Where a reconnecting SSE client resumes (CONTRACT.md §4). */
  lastEventId: 'last-event-id',
  /** W3C Trace Context on requests and callbacks (CONTRACT.md §6). */
  traceparent: 'traceparent',
} as const;
