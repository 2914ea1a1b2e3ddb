import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  VERIFY_AFTER_MS,
  VERIFY_BLOCKING_EVERY_MS,
  VERIFY_LOOKUPS_PER_ROUND,
  VerificationSchedule,
} from './verification-schedule.js';

const item = (n: number) => ({ partition: n % 4, conversationId: `c-${n % 7}`, workItemId: `wi-${n}` });
const ids = (due: { workItemId: string }[]) => due.map((entry) => entry.workItemId);

describe('VerificationSchedule', () => {
  it('looks an outstanding item up 10 s, 1 min, 5 min and 20 min after it was first held, then every 20 min', () => {
    const schedule = new VerificationSchedule();
    schedule.track(item(1), 0);
    schedule.track(item(1), 5_000); // tracked again: nothing changes
    const times: number[] = [];
    for (let now = 0; now <= 3_700_000; now += 500) {
      if (schedule.due(now, () => true, []).length > 0) times.push(now);
    }
    expect(times).toEqual([10_000, 70_000, 370_000, 1_570_000, 2_770_000]);
    expect(VERIFY_AFTER_MS).toEqual([10_000, 60_000, 300_000, 1_200_000]);
  });

  it('drops an item that ended or is no longer held when it comes due, and forgets it', () => {
    const schedule = new VerificationSchedule();
    for (let n = 0; n < 10; n++) schedule.track(item(n), n);
    const outstanding = new Set(['wi-2', 'wi-5']);
    expect(ids(schedule.due(20_000, (due) => outstanding.has(due.workItemId), []))).toEqual(['wi-2', 'wi-5']);
    expect(schedule.size).toBe(2);
    schedule.forget('wi-2');
    expect(ids(schedule.due(90_000, () => true, []))).toEqual(['wi-5']);
  });

  it('looks a blocking head up at once, then every 5 s while it blocks', () => {
    const schedule = new VerificationSchedule();
    const head = item(3);
    const due = (now: number) => ids(schedule.due(now, () => true, [head]));
    expect(due(1_000)).toEqual(['wi-3']);
    expect(due(1_000 + VERIFY_BLOCKING_EVERY_MS - 1)).toEqual([]);
    expect(due(1_000 + VERIFY_BLOCKING_EVERY_MS)).toEqual(['wi-3']);
  });

  it('looks up at most a budget a round, blocking heads first; the rest waits, in order', () => {
    const schedule = new VerificationSchedule();
    const count = VERIFY_LOOKUPS_PER_ROUND * 2 + 10;
    for (let n = 0; n < count; n++) schedule.track(item(n), 0);
    const head = item(count);
    const first = ids(schedule.due(10_000, () => true, [head]));
    expect(first).toHaveLength(VERIFY_LOOKUPS_PER_ROUND);
    expect(first[0]).toBe(head.workItemId);
    expect(first[1]).toBe('wi-0');
    const second = ids(schedule.due(11_000, () => true, []));
    const third = ids(schedule.due(12_000, () => true, []));
    expect(second).toHaveLength(VERIFY_LOOKUPS_PER_ROUND);
    expect(third).toHaveLength(11);
    const all = [...first.slice(1), ...second, ...third];
    expect(all).toEqual(Array.from({ length: count }, (_, n) => `wi-${n}`));
  });

  it('gives each due item once per round, in time order, whatever the tracking order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 200_000 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.nat({ max: 400_000 }), { minLength: 1, maxLength: 20 }),
        (trackTimes, roundTimes) => {
          const schedule = new VerificationSchedule();
          const tracked = [...trackTimes].sort((a, b) => a - b);
          tracked.forEach((at, n) => schedule.track(item(n), at));
          const seen = new Map<string, number[]>();
          for (const now of [...roundTimes].sort((a, b) => a - b)) {
            const round = ids(schedule.due(now, () => true, []));
            expect(new Set(round).size).toBe(round.length);
            for (const id of round) seen.set(id, [...(seen.get(id) ?? []), now]);
          }
          // An item is due no earlier than its schedule says, and each lookup is a step later.
          for (const [id, times] of seen) {
            const first = tracked[Number(id.slice(3))];
            let nextAt = first + VERIFY_AFTER_MS[0];
            for (const [step, at] of times.entries()) {
              expect(at).toBeGreaterThanOrEqual(nextAt);
              nextAt = at + VERIFY_AFTER_MS[Math.min(step + 1, VERIFY_AFTER_MS.length - 1)];
            }
          }
        },
      ),
    );
  });
});
