import { ApiError, type ErrorCode, type ErrorObject } from '@backchannel/contracts';

/**
 * An ApiError whose `source` names a query parameter or a header rather than a body
 * pointer (the envelope allows `source.parameter` and `source.header`, CONTRACT.md §5).
 * It renders through the same filter: only `toErrorObject` differs.
 */
export class SourcedApiError extends ApiError {
  constructor(
    code: ErrorCode,
    detail: string,
    readonly source: { parameter: string } | { header: string },
  ) {
    super(code, detail);
  }

  override toErrorObject(context: { requestId?: string; traceId?: string } = {}): ErrorObject {
    return { ...super.toErrorObject(context), source: { ...this.source } };
  }
}

/** 400 for a query parameter (`source.parameter`). */
export function invalidParameter(parameter: string, detail: string): SourcedApiError {
  return new SourcedApiError('invalid_request', detail, { parameter });
}

/** 400 for a request header (`source.header`). */
export function invalidHeader(header: string, detail: string): SourcedApiError {
  return new SourcedApiError('invalid_request', detail, { header });
}
