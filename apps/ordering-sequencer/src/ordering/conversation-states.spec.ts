import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ConversationStates, type HeldState } from './conversation-states.js';
import { initialState } from './release-order.js';

function heldOf(conversationId: string, partition: number): HeldState {
  return {
    state: initialState(conversationId),
    partition,
    session: 1,
    revision: null,
    heldResults: 0,
    version: 0,
    writtenVersion: 0,
    firstUnsavedSeq: Number.POSITIVE_INFINITY,
    savedAt: 0,
    catchingUp: false,
  };
}

const dirtyIds = (states: ConversationStates, partition: number) =>
  states
    .dirty(partition)
    .map(([id]) => id)
    .sort();

describe('ConversationStates', () => {
  it('lists as dirty exactly the states changed since their last save, per partition (property)', () => {
    // Operations: change a state (version bumped), save it (written up to its version), drop it.
    const operation = fc.record({
      kind: fc.constantFrom('change', 'save', 'delete', 'replace'),
      n: fc.nat({ max: 9 }),
    });
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 80 }), (operations) => {
        const states = new ConversationStates();
        for (let n = 0; n < 10; n++) states.set(`c-${n}`, heldOf(`c-${n}`, n % 3));
        for (const { kind, n } of operations) {
          const id = `c-${n}`;
          const held = states.get(id);
          if (kind === 'replace') {
            const fresh = heldOf(id, n % 3);
            fresh.version = 1;
            states.set(id, fresh);
          } else if (!held) {
            continue;
          } else if (kind === 'change') {
            held.version += 1;
            states.changed(held, n % 2);
          } else if (kind === 'save') {
            held.writtenVersion = held.version;
          } else {
            states.delete(id);
          }
        }
        for (let partition = 0; partition < 3; partition++) {
          const expected = [...states.entries()]
            .filter(([, held]) => held.partition === partition && held.version > held.writtenVersion)
            .map(([id]) => id)
            .sort();
          expect(dirtyIds(states, partition)).toEqual(expected);
        }
        const holding = [...states.entries()].filter(([, held]) => held.heldResults > 0).map(([id]) => id);
        expect([...states.holdingResults()].map(([id]) => id).sort()).toEqual(holding.sort());
        expect(states.heldResults).toBe([...states.entries()].reduce((sum, [, held]) => sum + held.heldResults, 0));
      }),
    );
  });

  it('forgets a partition whole', () => {
    const states = new ConversationStates();
    const held = heldOf('c-1', 2);
    held.version = 1;
    states.set('c-1', held);
    states.changed(held, 1);
    states.deletePartition(2);
    expect(dirtyIds(states, 2)).toEqual([]);
    expect([...states.holdingResults()]).toEqual([]);
    expect(states.heldResults).toBe(0);
  });
});
