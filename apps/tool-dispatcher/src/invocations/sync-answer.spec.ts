import { describe, expect, it } from '@jest/globals';
import { ApiError } from '@backchannel/contracts';
import { resultOfSyncAnswer } from './sync-answer.js';

function failure(run: () => unknown): ApiError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected a failure');
}

describe('resultOfSyncAnswer', () => {
  it('200 with result is the result, whatever JSON it is', () => {
    expect(resultOfSyncAnswer({ status: 200, body: '{"result":{"a":1}}' })).toEqual({ a: 1 });
    expect(resultOfSyncAnswer({ status: 200, body: '{"result":null}' })).toBeNull();
    expect(resultOfSyncAnswer({ status: 200, body: '{"result":[1,2]}' })).toEqual([1, 2]);
  });

  it('200 with errors is 502 tool_failed carrying them', () => {
    const errors = [{ code: 'nope', title: 'Nope' }];
    const error = failure(() => resultOfSyncAnswer({ status: 200, body: JSON.stringify({ errors }) }));
    expect(error.code).toBe('tool_failed');
    expect(error.meta).toEqual({ status: 200, errors });
  });

  it('any other status is 502 tool_failed with the status, and the errors when the body has them', () => {
    expect(failure(() => resultOfSyncAnswer({ status: 500, body: 'boom' })).meta).toEqual({ status: 500 });
    expect(failure(() => resultOfSyncAnswer({ status: 202, body: '{"result":1}' })).meta).toEqual({ status: 202 });
    expect(
      failure(() => resultOfSyncAnswer({ status: 422, body: '{"errors":[{"code":"x","title":"X"}]}' })).meta,
    ).toEqual({
      status: 422,
      errors: [{ code: 'x', title: 'X' }],
    });
  });

  it('200 without result or errors, or not JSON, is 502 tool_failed', () => {
    expect(failure(() => resultOfSyncAnswer({ status: 200, body: '{"value":1}' })).code).toBe('tool_failed');
    expect(failure(() => resultOfSyncAnswer({ status: 200, body: 'ok' })).code).toBe('tool_failed');
    expect(failure(() => resultOfSyncAnswer({ status: 200, body: '' })).code).toBe('tool_failed');
  });
});
