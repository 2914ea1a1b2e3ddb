import { describe, expect, it } from '@jest/globals';
import { SourcedApiError } from '../errors.js';
import { parsePageQuery, parseResumePoint } from './page-query.js';

describe('parsePageQuery', () => {
  it('defaults after to 0 and limit to 100', () => {
    expect(parsePageQuery({})).toEqual({ after: 0, limit: 100 });
    expect(parsePageQuery({ after: '7', limit: '1000' })).toEqual({ after: 7, limit: 1000 });
  });

  it.each([
    [{ after: '-1' }, 'after'],
    [{ after: '1e3' }, 'after'],
    [{ after: ['1', '2'] }, 'after'],
    [{ limit: '0' }, 'limit'],
    [{ limit: '1001' }, 'limit'],
    [{ limit: '' }, 'limit'],
  ])('refuses %j naming the parameter', (query, parameter) => {
    const sut = () => parsePageQuery(query);
    expect(sut).toThrow(SourcedApiError);
    try {
      sut();
    } catch (error) {
      expect((error as SourcedApiError).toErrorObject().source).toEqual({ parameter });
    }
  });
});

describe('parseResumePoint', () => {
  it('prefers Last-Event-ID over ?after, and starts live with neither', () => {
    expect(parseResumePoint('5', '2')).toBe(5);
    expect(parseResumePoint(undefined, '2')).toBe(2);
    expect(parseResumePoint(undefined, undefined)).toBeUndefined();
    expect(parseResumePoint('', undefined)).toBeUndefined();
  });

  it('refuses a Last-Event-ID that is not a position', () => {
    expect(() => parseResumePoint('abc', undefined)).toThrow(SourcedApiError);
  });
});
