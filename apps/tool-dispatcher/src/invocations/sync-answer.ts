import { ApiError, type ErrorObject } from '@backchannel/contracts';
import type { ToolAnswer } from '../outbound/tool-http-client.js';

/** At most this many of a provider's errors travel back in `meta.errors`. */
const MAX_PASSED_ERRORS = 20;

/**
 * A sync tool's answer (CONTRACT.md §6): 200 with `{"result": …}` is the result; 200 with
 * `{"errors": […]}`, any other status, or any other body is 502 `tool_failed` carrying
 * the provider's errors in `meta.errors` and/or its status in `meta.status`.
 */
export function resultOfSyncAnswer(answer: ToolAnswer): unknown {
  const body = parseJson(answer.body);
  const errors = errorsOf(body);
  if (answer.status === 200 && errors === undefined && isObject(body) && 'result' in body) return body.result;
  if (errors !== undefined) {
    throw new ApiError('tool_failed', 'the tool answered with errors', {
      meta: { status: answer.status, errors: errors.slice(0, MAX_PASSED_ERRORS) },
    });
  }
  if (answer.status !== 200) {
    throw new ApiError('tool_failed', `the tool answered HTTP ${answer.status}`, { meta: { status: answer.status } });
  }
  throw new ApiError('tool_failed', 'the tool answered 200 without "result" or "errors"', {
    meta: { status: answer.status },
  });
}

function parseJson(text: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function errorsOf(body: unknown): ErrorObject[] | undefined {
  if (!isObject(body) || !Array.isArray(body.errors)) return undefined;
  return body.errors.filter(isObject) as unknown as ErrorObject[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
