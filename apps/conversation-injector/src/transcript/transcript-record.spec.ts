import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { ReleaseMessage } from '@backchannel/contracts';
import {
  EMPTY_PAGE_BYTES,
  addToPage,
  decideRelease,
  recordFromApi,
  recordFromRelease,
  toInjectedMessage,
} from './transcript-record.js';

describe('decideRelease', () => {
  it('applies the next index, recognises repeats, and never skips one', () => {
    expect(decideRelease(1, 0)).toBe('apply');
    expect(decideRelease(5, 4)).toBe('apply');
    expect(decideRelease(4, 4)).toBe('already_applied');
    expect(decideRelease(1, 4)).toBe('already_applied');
    expect(decideRelease(6, 4)).toBe('gap');
  });

  it('injects each release once and in order, whatever the redeliveries (model)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 200 }), (deliveries) => {
        // Deliveries as a stream with redeliveries: every index arrives after all smaller ones first arrived.
        const sut = { applied: 0, injected: [] as number[] };
        const stream = [...deliveries.map((n) => Math.min(n, sut.applied + 1)), ...[1, 2, 3]];
        for (const index of stream) {
          const decision = decideRelease(index, sut.applied);
          if (decision === 'apply') {
            sut.injected.push(index);
            sut.applied = index;
          }
          expect(decision).not.toBe('gap');
        }
        expect(sut.injected).toEqual(Array.from({ length: sut.applied }, (_, i) => i + 1));
      }),
    );
  });
});

describe('transcript records', () => {
  const release: ReleaseMessage = {
    conversation_id: 'c1',
    release_index: 3,
    role: 'tool',
    source: { type: 'callback', work_item_id: 'wi_01HZZZZZZZZZZZZZZZZZZZZZZZ', sequence: 7 },
    result: { ok: true },
    delivery: 'interrupt',
    trace_id: 'a'.repeat(32),
    accepted_at: '2026-01-01T00:00:00.000Z',
  };

  it('turns a release into an entry that carries its release index, and shows only the contract fields', () => {
    const record = recordFromRelease(release, 9, '2026-01-01T00:00:01.000Z');
    expect(record.applied_release_index).toBe(3);
    const sut = toInjectedMessage(record);
    expect(sut).toEqual({
      position: 9,
      conversation_id: 'c1',
      role: 'tool',
      source: { type: 'callback', work_item_id: 'wi_01HZZZZZZZZZZZZZZZZZZZZZZZ', sequence: 7 },
      result: { ok: true },
      delivery: 'interrupt',
      trace_id: 'a'.repeat(32),
      injected_at: '2026-01-01T00:00:01.000Z',
    });
    expect(Object.keys(sut)).not.toContain('release_index');
    expect(Object.keys(sut)).not.toContain('accepted_at');
  });

  it('makes API messages source api, when_idle, carrying the applied index forward', () => {
    const record = recordFromApi({
      conversationId: 'c1',
      role: 'system',
      content: 'hi',
      traceId: 'b'.repeat(32),
      position: 4,
      appliedReleaseIndex: 2,
      injectedAt: 'now',
      idempotencyKeyHash: 'h',
    });
    expect(record).toMatchObject({ source: { type: 'api' }, delivery: 'when_idle', applied_release_index: 2 });
    expect(toInjectedMessage(record)).not.toHaveProperty('idempotency_key_hash');
  });
});

describe('addToPage', () => {
  it('always takes the first message, then stops before the budget is passed', () => {
    expect(addToPage(EMPTY_PAGE_BYTES, 0, 10_000, 100)).toBe(EMPTY_PAGE_BYTES + 10_000);
    expect(addToPage(50, 1, 40, 100)).toBe(91);
    expect(addToPage(50, 1, 50, 100)).toBeNull();
  });

  it('never lets a page of two or more messages pass the budget', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 2, max: 5_000 }), { minLength: 1, maxLength: 50 }),
        fc.integer({ min: 100, max: 20_000 }),
        (sizes, budget) => {
          let bytes: number | null = EMPTY_PAGE_BYTES;
          let count = 0;
          for (const size of sizes) {
            const next: number | null = addToPage(bytes, count, size, budget);
            if (next === null) break;
            bytes = next;
            count++;
          }
          expect(count).toBeGreaterThanOrEqual(1);
          if (count > 1) expect(bytes).toBeLessThanOrEqual(budget);
        },
      ),
    );
  });
});
