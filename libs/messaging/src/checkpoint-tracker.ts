/**
 * Which stream sequences of a partition are fully applied. Messages are delivered in
 * stream order but finish in any order (conversations run side by side), so the
 * checkpoint is the sequence just below the oldest message still in flight: everything at
 * or below it is done, and a restart from `checkpoint + 1` loses nothing.
 */
export class CheckpointTracker {
  /** Delivered and not yet done, oldest first (delivery order is stream order). */
  private readonly inFlight: number[] = [];
  private head = 0;
  private readonly done = new Set<number>();
  private lastDeliveredSeq: number;

  constructor(startAfter: number) {
    this.lastDeliveredSeq = startAfter;
  }

  /** A message was delivered. Sequences must rise; an older one (a redelivery) is ignored. */
  delivered(seq: number): boolean {
    if (seq <= this.lastDeliveredSeq) return false;
    this.lastDeliveredSeq = seq;
    this.inFlight.push(seq);
    return true;
  }

  /** A delivered message is fully applied. */
  finished(seq: number): void {
    this.done.add(seq);
    while (this.head < this.inFlight.length && this.done.delete(this.inFlight[this.head])) this.head++;
    if (this.head > 1024 && this.head * 2 > this.inFlight.length) {
      this.inFlight.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Every delivered sequence at or below this is done. */
  get checkpoint(): number {
    return this.head < this.inFlight.length ? this.inFlight[this.head] - 1 : this.lastDeliveredSeq;
  }

  /** The highest sequence delivered so far. */
  get lastDelivered(): number {
    return this.lastDeliveredSeq;
  }

  /** Messages delivered and not yet done. */
  get pending(): number {
    return this.inFlight.length - this.head;
  }
}
