import { Clock } from '@backchannel/config';

/** A clock tests move by hand, so deadlines are tested without waiting for them. */
export class ManualClock extends Clock {
  private offsetMs = 0;

  override now(): number {
    return Date.now() + this.offsetMs;
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
