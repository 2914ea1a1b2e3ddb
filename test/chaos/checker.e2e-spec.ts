// Pure unit test of the chaos checker. Named *.e2e-spec.ts because jest's unit project only
// looks under apps/ and libs/; it needs no broker and runs in milliseconds.
import { describe, expect, it } from '@jest/globals';
import {
  chaosLine,
  checkRun,
  sumFigures,
  type AcceptedCallback,
  type Delivered,
  type RegisteredItem,
} from './checker.js';

const conv = 'c1';
const registered: RegisteredItem[] = [1, 2, 3].map((sequence) => ({
  conversationId: conv,
  workItemId: `wi${sequence}`,
  sequence,
  ordered: true,
}));
const accepted: AcceptedCallback[] = registered.map((item) => ({ ...item, body: { n: item.sequence } }));

function released(sequence: number, place: number, extra: Partial<Delivered> = {}): Delivered {
  return {
    conversationId: conv,
    place,
    sourceType: 'callback',
    workItemId: `wi${sequence}`,
    sequence,
    body: { n: sequence },
    ...extra,
  };
}

describe('chaos checker', () => {
  it('counts nothing wrong when every accepted result is released once, in order', () => {
    const sut = checkRun({
      attempted: 3,
      registered,
      accepted,
      delivered: [released(1, 1), released(2, 2), released(3, 3)],
    });
    expect(sut.figures).toEqual({
      attempted: 3,
      accepted: 3,
      injected: 3,
      lost: 0,
      duplicated: 0,
      unexpected: 0,
      out_of_order: 0,
      timed_out: 0,
    });
  });

  it('counts a missing result as lost and a second copy as duplicated', () => {
    const sut = checkRun({
      attempted: 3,
      registered,
      accepted,
      delivered: [released(1, 1), released(1, 2), released(3, 3)],
    });
    expect(sut.figures).toMatchObject({ injected: 2, lost: 1, duplicated: 1, out_of_order: 0 });
    expect(sut.examples.lost[0]).toContain('wi2');
  });

  it('counts releases out of sequence order, each late one once', () => {
    const sut = checkRun({
      attempted: 3,
      registered,
      accepted,
      delivered: [released(2, 1), released(3, 2), released(1, 3), released(1, 4)],
    });
    expect(sut.figures).toMatchObject({ out_of_order: 1, duplicated: 1, lost: 0 });
  });

  it('treats a timeout as expected, a result nobody accepted or another body as unexpected', () => {
    const sut = checkRun({
      attempted: 3,
      registered,
      accepted: accepted.slice(0, 2),
      delivered: [
        released(1, 1, { body: { n: 'other' } }),
        released(2, 2),
        released(3, 3, { sourceType: 'timeout', body: undefined }),
        released(3, 4),
      ],
    });
    expect(sut.figures).toMatchObject({ accepted: 2, injected: 1, lost: 1, unexpected: 2, timed_out: 1 });
    // The timeout and the unaccepted result are two finals of wi3.
    expect(sut.figures.duplicated).toBe(1);
  });

  it('ignores other conversations and API messages; compares bodies as JSON values', () => {
    const sut = checkRun({
      attempted: 1,
      registered: registered.slice(0, 1),
      accepted: [{ ...accepted[0], body: { a: 1, b: [1, 2] } }],
      acceptedProgress: [{ conversationId: conv, workItemId: 'wi1', progressId: 'p1' }],
      delivered: [
        { conversationId: conv, place: 1, sourceType: 'api' },
        released(1, 2, { sourceType: 'progress', body: undefined, progressId: 'p1' }),
        released(1, 3, { body: { b: [1, 2], a: 1 } }),
        { ...released(2, 1), conversationId: 'someone-else' },
      ],
    });
    expect(sut.figures).toMatchObject({ injected: 1, lost: 0, duplicated: 0, unexpected: 0, out_of_order: 0 });
  });

  it('counts progress updates: lost, duplicated, unaccepted, or after their final', () => {
    const progress = (sequence: number, id: string, place: number): Delivered => ({
      ...released(sequence, place, { sourceType: 'progress', body: undefined }),
      progressId: id,
    });
    const sut = checkRun({
      attempted: 3,
      registered,
      accepted,
      acceptedProgress: [
        { conversationId: conv, workItemId: 'wi1', progressId: 'p1' },
        { conversationId: conv, workItemId: 'wi2', progressId: 'p1' },
        { conversationId: conv, workItemId: 'wi3', progressId: 'p1' },
      ],
      delivered: [
        progress(1, 'p1', 1),
        progress(1, 'p1', 2),
        progress(2, 'p9', 3),
        released(1, 4),
        released(2, 5),
        released(3, 6),
        progress(3, 'p1', 7),
      ],
    });
    expect(sut.figures).toMatchObject({ injected: 3, lost: 1, duplicated: 1, unexpected: 1, out_of_order: 1 });
  });

  it('does not hold unordered items to sequence order', () => {
    const mixed = registered.map((item) => ({ ...item, ordered: item.sequence !== 1 }));
    const sut = checkRun({
      attempted: 3,
      registered: mixed,
      accepted,
      delivered: [released(2, 1), released(3, 2), released(1, 3)],
    });
    expect(sut.figures.out_of_order).toBe(0);
  });

  it('prints the summary line and adds runs up', () => {
    const one = checkRun({ attempted: 3, registered, accepted, delivered: [released(1, 1), released(2, 2)] }).figures;
    expect(chaosLine(sumFigures([one, one]))).toBe(
      'chaos: attempted=6 injected=4 lost=2 duplicated=0 unexpected=0 out_of_order=0',
    );
  });
});
