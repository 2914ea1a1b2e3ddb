import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { WorkItemEndedEvent, WorkItemOutcome } from '@backchannel/contracts';
import { callbackVerdict, progressVerdict, type CallbackVerdict } from './token-verdict.js';

const REPLAY_TTL_MS = 10_000;
const DEADLINE_MS = 5_000;

type Op =
  | { type: 'callback'; body: 'A' | 'B'; advanceMs: number }
  | { type: 'progress'; advanceMs: number }
  | { type: 'cancel'; advanceMs: number }
  | { type: 'conversation_end'; advanceMs: number };

/** A work item as the ledger holds it: one end, first write wins (what JetStream enforces). */
class ItemUnderTest {
  end: WorkItemEndedEvent | null = null;
  now = 0;

  private write(outcome: WorkItemOutcome, bodyHash?: string): 'recorded' | 'lost' {
    const wanted =
      this.now >= DEADLINE_MS
        ? { outcome: { state: 'timed_out' } as const, at: DEADLINE_MS }
        : { outcome, at: this.now };
    if (this.end) return 'lost';
    this.end = {
      type: 'work_item.ended',
      conversation_id: 'c',
      work_item_id: 'wi',
      outcome: wanted.outcome,
      ...(wanted.outcome.state === outcome.state && bodyHash ? { body_hash: bodyHash } : {}),
      trace_id: 't',
      at: new Date(wanted.at).toISOString(),
    };
    return wanted.outcome === outcome ? 'recorded' : 'lost';
  }

  callback(body: string): CallbackVerdict {
    const write = this.write({ state: 'completed', result: body }, body);
    return callbackVerdict({ write, winner: this.end!, bodyHash: body, nowMs: this.now, replayTtlMs: REPLAY_TTL_MS });
  }

  endBy(outcome: WorkItemOutcome): void {
    this.write(outcome);
  }
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    type: fc.constant('callback' as const),
    body: fc.constantFrom('A' as const, 'B' as const),
    advanceMs: fc.nat(4_000),
  }),
  fc.record({ type: fc.constant('progress' as const), advanceMs: fc.nat(4_000) }),
  fc.record({ type: fc.constant('cancel' as const), advanceMs: fc.nat(4_000) }),
  fc.record({ type: fc.constant('conversation_end' as const), advanceMs: fc.nat(4_000) }),
);

describe('token state machine (property)', () => {
  it('answers every callback as the contract table says, against a simple model', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 30 }), (ops) => {
        const sut = new ItemUnderTest();
        let accepted: string | null = null;
        for (const op of ops) {
          sut.now += op.advanceMs;
          if (op.type === 'cancel') sut.endBy({ state: 'cancelled', reason: 'cancelled' });
          if (op.type === 'conversation_end') sut.endBy({ state: 'cancelled', reason: 'conversation_ended' });
          if (op.type === 'progress') {
            const verdict = progressVerdict(sut.end, sut.now, REPLAY_TTL_MS);
            expect(verdict.kind).toBe(
              sut.end ? (sut.now > Date.parse(sut.end.at) + REPLAY_TTL_MS ? 'forgotten' : 'closed') : 'pending',
            );
            continue;
          }
          if (op.type !== 'callback') continue;
          const endBefore = sut.end;
          const verdict = sut.callback(op.body);
          // The model: the first end wins; its answer follows from what won and when.
          if (!endBefore && sut.now < DEADLINE_MS) {
            expect(verdict).toEqual({ kind: 'accepted' });
            expect(accepted).toBeNull();
            accepted = op.body;
            continue;
          }
          const end = sut.end!;
          if (sut.now > Date.parse(end.at) + REPLAY_TTL_MS) expect(verdict.kind).toBe('forgotten');
          else if (accepted === op.body) expect(verdict.kind).toBe('duplicate');
          else if (accepted !== null) expect(verdict.kind).toBe('conflict');
          else if (end.outcome.state === 'cancelled' && end.outcome.reason === 'conversation_ended')
            expect(verdict).toMatchObject({ kind: 'closed', code: 'conversation_ended' });
          else expect(verdict).toMatchObject({ kind: 'closed', code: 'work_item_closed', state: end.outcome.state });
        }
        // Exactly one end, and a 202 only ever for the body that is stored.
        if (accepted !== null) expect(sut.end?.body_hash).toBe(accepted);
      }),
      { numRuns: 1_000 },
    );
  });

  it('a duplicate write (the broker deduplicated our own retry) is a 200, never a second 202', () => {
    const winner: WorkItemEndedEvent = {
      type: 'work_item.ended',
      conversation_id: 'c',
      work_item_id: 'wi',
      outcome: { state: 'completed', result: 1 },
      body_hash: 'h',
      trace_id: 't',
      at: new Date(0).toISOString(),
    };
    expect(callbackVerdict({ write: 'duplicate', winner, bodyHash: 'h', nowMs: 1, replayTtlMs: 10 })).toEqual({
      kind: 'duplicate',
    });
  });
});
