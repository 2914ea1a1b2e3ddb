import { ApiError, type WorkItemKind, type WorkItemOutcome } from '@backchannel/contracts';
import { validateDto } from '@backchannel/http';
import { ErrorsBodyDto, LlmBodyDto, ProgressBodyDto, type ProgressDto } from './dto/callback-body.dto.js';

const FINAL_FIELDS = ['result', 'message', 'errors'] as const;

/**
 * Checks a callback body against its work item's kind (CONTRACT.md §3): exactly one of
 * `result` (tool), `message` (llm) or `errors` (either). Returns the outcome to record.
 */
export function outcomeOfCallback(body: unknown, kind: WorkItemKind): WorkItemOutcome {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'the body must be a JSON object', { pointer: '' });
  }
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
  return validateDto(ProgressBodyDto, body).progress;
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
