import { ApiError, type WorkItemKind, type WorkItemOutcome } from '@backchannel/contracts';
import { validateDto } from '@backchannel/http';
import { ErrorsBodyDto, LlmBodyDto, ProgressBodyDto, type ProgressDto } from './dto/callback-body.dto.js';

const FINAL_FIELDS = ['result', 'message', 'errors'] as const;

/**
 * Deepest nesting of objects and arrays a callback body may have. The contract is silent;
 * canonical hashing and validation recurse, so a deeper body (256 KiB allows ~130,000
 * levels) would overflow the stack. 128 levels is far beyond any real result.
 */
export const MAX_CALLBACK_JSON_DEPTH = 128;

/**
 * Checks a callback body against its work item's kind (CONTRACT.md §3): exactly one of
 * `result` (tool), `message` (llm) or `errors` (either). Returns the outcome to record.
 */
export function outcomeOfCallback(body: unknown, kind: WorkItemKind): WorkItemOutcome {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'the body must be a JSON object', { pointer: '' });
  }
  requireRepresentable(body);
  const present = Object.keys(body);
  const stray = present.find((key) => !(FINAL_FIELDS as readonly string[]).includes(key));
  if (stray !== undefined)
    throw new ApiError('invalid_request', `${stray} is not allowed`, { pointer: `/${escape(stray)}` });
  if (present.length !== 1) {
    const pointer = present.length === 0 ? '' : `/${present[1]}`;
    throw new ApiError('invalid_request', 'the body must hold exactly one of result, message or errors', { pointer });
  }
  const field = present[0] as (typeof FINAL_FIELDS)[number];
  switch (field) {
    case 'errors':
      return { state: 'failed', by: 'callback', errors: validateDto(ErrorsBodyDto, body).errors.map(plainError) };
    case 'result':
      if (kind !== 'tool') throw wrongKind('/result', 'an llm work item answers with message, not result');
      return { state: 'completed', result: (body as { result: unknown }).result };
    case 'message':
      if (kind !== 'llm') throw wrongKind('/message', 'a tool work item answers with result, not message');
      return { state: 'completed', message: { content: validateDto(LlmBodyDto, body).message.content } };
  }
}

/** Checks a progress body (CONTRACT.md §3). */
export function progressOfBody(body: unknown): ProgressDto {
  requireRepresentable(body);
  return validateDto(ProgressBodyDto, body).progress;
}

/**
 * Refuses what JSON allows but the mesh cannot store or compare (400 with a pointer):
 * nesting deeper than MAX_CALLBACK_JSON_DEPTH, and numbers beyond a double's range (`1e400`
 * parses as Infinity, which has no canonical form). Iterative, so it cannot overflow itself.
 */
function requireRepresentable(body: unknown): void {
  const pending: { value: unknown; pointer: string; depth: number }[] = [{ value: body, pointer: '', depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, pointer, depth } = next;
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new ApiError('invalid_request', 'a number is beyond the range of a double', { pointer });
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth === MAX_CALLBACK_JSON_DEPTH) {
      throw new ApiError('invalid_request', `the body nests deeper than ${MAX_CALLBACK_JSON_DEPTH} levels`, {
        pointer,
      });
    }
    for (const [key, child] of Object.entries(value)) {
      pending.push({ value: child, pointer: `${pointer}/${escape(key)}`, depth: depth + 1 });
    }
  }
}

function plainError(error: ErrorsBodyDto['errors'][number]): {
  code: string;
  title: string;
  detail?: string;
  meta?: Record<string, unknown>;
} {
  return {
    code: error.code,
    title: error.title,
    ...(error.detail !== undefined ? { detail: error.detail } : {}),
    ...(error.meta?.retryable !== undefined ? { meta: { retryable: error.meta.retryable } } : {}),
  };
}

function wrongKind(pointer: string, detail: string): ApiError {
  return new ApiError('invalid_request', detail, { pointer });
}

function escape(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}
