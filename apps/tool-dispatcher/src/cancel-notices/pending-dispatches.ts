/**
 * What the dispatcher remembers of an async item it dispatched, to send a cancel notice
 * if the item is cancelled, times out or its conversation ends (CONTRACT.md §6). Memory
 * only, by design: the signing secret is the provider's credential and is never stored;
 * after a restart, notices for items no longer held are not sent.
 */
export interface HeldDispatch {
  workItemId: string;
  conversationId: string;
  url: string;
  callControlId: string;
  signingSecret?: string;
  traceId: string;
  ackTimeoutMs: number;
  /** The item's deadline; a held entry long past it is swept (its end was missed). */
  expiresAtMs: number;
}

/** How long past its deadline an entry may wait for its end before it is swept. */
export const SWEEP_GRACE_MS = 10 * 60_000;

export class PendingDispatches {
  private readonly held = new Map<string, HeldDispatch>();

  hold(dispatch: HeldDispatch): void {
    this.held.set(dispatch.workItemId, dispatch);
  }

  has(workItemId: string): boolean {
    return this.held.has(workItemId);
  }

  /** Removes and returns the entry: whoever takes it acts on it, once. */
  take(workItemId: string): HeldDispatch | undefined {
    const dispatch = this.held.get(workItemId);
    this.held.delete(workItemId);
    return dispatch;
  }

  forget(workItemId: string): void {
    this.held.delete(workItemId);
  }

  /** Drops entries whose end never arrived (e.g. missed while the broker was away). */
  sweep(nowMs: number): number {
    let swept = 0;
    for (const [workItemId, dispatch] of this.held) {
      if (dispatch.expiresAtMs + SWEEP_GRACE_MS < nowMs) {
        this.held.delete(workItemId);
        swept++;
      }
    }
    return swept;
  }

  get size(): number {
    return this.held.size;
  }
}
