import type { ConversationOrderState } from './release-order.js';

/** A conversation's state as this replica holds it. */
export interface HeldState {
  state: ConversationOrderState;
  partition: number;
  /** The partition run it was caught up in: in a later run it must be caught up again. */
  session: number;
  /** Revision of its snapshot as last read or written (null: none): the next save's compare-and-set. */
  revision: number | null;
  /** Results held behind an earlier unfinished item (`heldCount` of the state). */
  heldResults: number;
  /** Bumped on every change; the snapshot written last had `writtenVersion`. */
  version: number;
  writtenVersion: number;
  /** Stream sequence of the first event applied since the last save (infinity: none). */
  firstUnsavedSeq: number;
  /** When it was last saved (epoch ms). */
  savedAt: number;
  /** Being completed from the work log (a catch-up cut short resumes before anything else is applied). */
  catchingUp: boolean;
}

/** A state with what it holds counted, so the gauge needs no walk over every conversation. */
export function heldResultsOf(held: HeldState | undefined): number {
  return held?.heldResults ?? 0;
}

/**
 * The ordering states of the conversations in the partitions this replica runs. They are
 * the working copy: the work log is the truth, and a snapshot of each (KV) only shortens
 * the catch-up after a restart or a takeover.
 */
export class ConversationStates {
  private readonly held = new Map<string, HeldState>();
  private heldTotal = 0;
  /**
   * Per partition, the conversations changed since their last snapshot (a superset: one
   * saved since is dropped when next looked at), so a checkpoint round costs what changed,
   * not every conversation held.
   */
  private readonly unsaved = new Map<number, Set<string>>();
  /** The conversations holding results behind an unfinished item. */
  private readonly holding = new Set<string>();

  get(conversationId: string): HeldState | undefined {
    return this.held.get(conversationId);
  }

  set(conversationId: string, held: HeldState): HeldState {
    this.heldTotal += held.heldResults - heldResultsOf(this.held.get(conversationId));
    this.held.set(conversationId, held);
    this.track(conversationId, held);
    return held;
  }

  /** Records a change to a held state (its `version` bumped): `heldResults` results now held. */
  changed(held: HeldState, heldResults: number): void {
    const conversationId = held.state.conversationId;
    if (this.held.get(conversationId) === held) this.heldTotal += heldResults - held.heldResults;
    held.heldResults = heldResults;
    this.track(conversationId, held);
  }

  delete(conversationId: string): void {
    this.heldTotal -= heldResultsOf(this.held.get(conversationId));
    this.held.delete(conversationId);
    this.holding.delete(conversationId);
  }

  /** Results held across every conversation this replica runs. */
  get heldResults(): number {
    return this.heldTotal;
  }

  entries(): IterableIterator<[string, HeldState]> {
    return this.held.entries();
  }

  /** The conversations holding results now. */
  *holdingResults(): IterableIterator<[string, HeldState]> {
    for (const conversationId of this.holding) {
      const held = this.held.get(conversationId);
      if (held) yield [conversationId, held];
    }
  }

  /** States of one partition changed since their last snapshot. */
  dirty(partition: number): [string, HeldState][] {
    const ids = this.unsaved.get(partition);
    if (!ids) return [];
    const dirty: [string, HeldState][] = [];
    for (const conversationId of ids) {
      const held = this.held.get(conversationId);
      if (held && held.partition === partition && held.version > held.writtenVersion)
        dirty.push([conversationId, held]);
      else ids.delete(conversationId);
    }
    return dirty;
  }

  deletePartition(partition: number): void {
    for (const [conversationId, held] of this.held) if (held.partition === partition) this.delete(conversationId);
    this.unsaved.delete(partition);
  }

  get size(): number {
    return this.held.size;
  }

  private track(conversationId: string, held: HeldState): void {
    if (this.held.get(conversationId) !== held) return;
    if (held.version > held.writtenVersion) {
      let ids = this.unsaved.get(held.partition);
      if (!ids) this.unsaved.set(held.partition, (ids = new Set()));
      ids.add(conversationId);
    }
    if (held.heldResults > 0) this.holding.add(conversationId);
    else this.holding.delete(conversationId);
  }
}
