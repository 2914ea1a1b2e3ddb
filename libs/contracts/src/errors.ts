/**
 * The error codes of CONTRACT.md §5 with their HTTP status and human title. A new code
 * is added to CONTRACT.md first, then here; nothing else declares one.
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, title: 'Invalid request' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  invalid_token: { status: 401, title: 'Invalid callback token' },
  not_found: { status: 404, title: 'Not found' },
  token_already_used: { status: 409, title: 'Token already used' },
  conversation_conflict: { status: 409, title: 'Conversation conflict' },
  work_item_closed: { status: 410, title: 'Work item closed' },
  conversation_ended: { status: 410, title: 'Conversation ended' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  rate_limited: { status: 429, title: 'Rate limited' },
  progress_limit_reached: { status: 429, title: 'Progress limit reached' },
  internal_error: { status: 500, title: 'Internal error' },
  tool_failed: { status: 502, title: 'Tool failed' },
  tool_unreachable: { status: 502, title: 'Tool unreachable' },
  unavailable: { status: 503, title: 'Unavailable' },
  tool_timeout: { status: 504, title: 'Tool timeout' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Each code by name (`ERROR_CODE.rate_limited`), for code that must not spell wire strings. */
export const ERROR_CODE = Object.freeze(
  Object.fromEntries(Object.keys(ERROR_CODES).map((code) => [code, code])) as { readonly [C in ErrorCode]: C },
);

/** Codes that appear only inside injected messages, never as an HTTP answer. */
export const INJECTED_ERROR_CODES = {
  work_item_timed_out: 'Work item timed out',
} as const;

export type InjectedErrorCode = keyof typeof INJECTED_ERROR_CODES;

/** Each injected-only code by name (`INJECTED_ERROR_CODE.work_item_timed_out`). */
export const INJECTED_ERROR_CODE = Object.freeze(
  Object.fromEntries(Object.keys(INJECTED_ERROR_CODES).map((code) => [code, code])) as {
    readonly [C in InjectedErrorCode]: C;
  },
);

/** One error object of the envelope (CONTRACT.md §5). */
export interface ErrorObject {
  code: string;
  title: string;
  detail?: string;
  source?: { pointer?: string; header?: string; parameter?: string };
  meta?: Record<string, unknown>;
}

/** The envelope every HTTP error and NATS error reply carries. */
export interface ErrorEnvelope {
  errors: ErrorObject[];
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

/**
 * An error that carries its contract code. Domain services throw it; the HTTP filter and
 * the NATS reply mapper render it as the envelope. No transport type appears here.
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly pointer?: string;
  readonly meta?: Record<string, unknown>;
  /** Extra response headers, e.g. `Retry-After`. */
  readonly headers?: Record<string, string>;

  constructor(
    code: ErrorCode,
    detail?: string,
    options: { pointer?: string; meta?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(detail ?? ERROR_CODES[code].title);
    this.name = 'ApiError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.pointer = options.pointer;
    this.meta = options.meta;
    this.headers = options.headers;
  }

  /** The error object of the envelope, with request and trace ids added to `meta`. */
  toErrorObject(context: { requestId?: string; traceId?: string } = {}): ErrorObject {
    const meta: Record<string, unknown> = { ...this.meta };
    if (context.requestId) meta.request_id = context.requestId;
    if (context.traceId) meta.trace_id = context.traceId;
    return {
      code: this.code,
      title: ERROR_CODES[this.code].title,
      detail: this.message,
      ...(this.pointer !== undefined ? { source: { pointer: this.pointer } } : {}),
      ...(Object.keys(meta).length > 0 ? { meta } : {}),
    };
  }
}

export function envelopeOf(error: ApiError, context: { requestId?: string; traceId?: string } = {}): ErrorEnvelope {
  return { errors: [error.toErrorObject(context)] };
}
