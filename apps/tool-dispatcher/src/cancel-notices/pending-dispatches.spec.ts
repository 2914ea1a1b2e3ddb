import { describe, expect, it } from '@jest/globals';
import { PendingDispatches, SWEEP_GRACE_MS, type HeldDispatch } from './pending-dispatches.js';

const held = (workItemId: string, expiresAtMs: number): HeldDispatch => ({
  workItemId,
  conversationId: 'c',
  url: 'http://tool.test/',
  callControlId: 'call',
  traceId: '0af7651916cd43dd8448eb211c80319c',
  ackTimeoutMs: 1_000,
  expiresAtMs,
});

describe('PendingDispatches', () => {
  it('hands an item out once', () => {
    const sut = new PendingDispatches();
    sut.hold(held('wi_a', 0));
    expect(sut.take('wi_a')?.workItemId).toBe('wi_a');
    expect(sut.take('wi_a')).toBeUndefined();
  });

  it('sweeps only items long past their deadline', () => {
    const sut = new PendingDispatches();
    sut.hold(held('wi_old', 1_000));
    sut.hold(held('wi_new', 5_000));
    expect(sut.sweep(1_000 + SWEEP_GRACE_MS + 1)).toBe(1);
    expect(sut.has('wi_old')).toBe(false);
    expect(sut.has('wi_new')).toBe(true);
  });
});
