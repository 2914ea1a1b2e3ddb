import { expect } from '@jest/globals';
import type { ErrorCode } from '@backchannel/contracts';

/** An answer as the test helpers give it: an HTTP status when there is one, and the body. */
export interface Answer {
  status?: number;
  body: any;
}

/** The code of an answer's first error, or undefined for a result. */
export function codeOf(answer: Answer): string | undefined {
  return answer.body?.errors?.[0]?.code;
}

/**
 * The answer is the error envelope (CONTRACT.md §5) with `code` (pass `ERROR_CODE.…` from
 * `@backchannel/contracts`), and, when it came over HTTP, the exact `status` the contract
 * gives that answer: written out by the test, not derived from the table the code uses.
 */
export function expectError(answer: Answer, status: number, code: ErrorCode): void {
  expect({ status: answer.status ?? status, code: codeOf(answer) }).toEqual({ status, code });
  expect(answer.body.errors).toHaveLength(1);
}
